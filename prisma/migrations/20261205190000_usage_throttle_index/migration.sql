-- Which versions are throttled at a target: the newest throttle or release event of each version
-- (src/db/usage.ts throttled()), read by every usage check, so that a throttle set by one
-- process (or by a process before its restart) is lifted by whichever process checks next. A
-- partial index, which Prisma's schema cannot express (see AuditEvent); these events are few.
CREATE INDEX "audit_events_usage_throttle_idx" ON "audit_events" ("version_id", "seq")
  WHERE action = 'usage.released' OR (action = 'usage.anomaly' AND data->>'done' = 'throttled');
