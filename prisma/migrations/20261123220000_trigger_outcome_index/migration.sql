-- A trigger that made no run of its own (stale, or joined to a running rotation) is audited
-- once per idempotency key, also when its job is delivered again: this index finds the earlier
-- outcome. An expression index, which Prisma's schema cannot express (see AuditEvent).
CREATE INDEX "audit_events_trigger_key_idx" ON "audit_events" ((data->>'idempotencyKey')) WHERE action LIKE 'trigger.%';
