-- One outcome per trigger key (invariant 6), refused by the database itself: a run made under
-- the key (its `run.started`, which carries the key) or a trigger that made none
-- (`trigger.joined`, `trigger.stale`). Two deliveries of one trigger, each deciding from a
-- snapshot that misses the other's outcome, cannot both commit (src/db/runs.ts). It replaces
-- the plain index on trigger events' keys, whose lookups it serves (their predicate implies
-- this one's). Rows from before it carry no key in `run.started` and are left out (a null key).
DROP INDEX "audit_events_trigger_key_idx";
CREATE UNIQUE INDEX "audit_events_trigger_key_key" ON "audit_events" ((data->>'idempotencyKey'))
  WHERE action LIKE 'trigger.%' OR action = 'run.started';
