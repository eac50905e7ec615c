-- A run's bookkeeping (its step, its lease renewed or released) no longer moves updated_at, so
-- those updates can be HOT: PostgreSQL 15 writes a new entry in every index of a row whose
-- indexed column changes (updated_at is, by runs_updated_at_idx), seven for a run, while a
-- step or a lease is in none. The incremental reconcile (src/db/pending-work.ts) still finds a
-- run by its updated_at when it is created, gets its version, an attempt (a lease taken counts
-- one), a grace or an error, and when it ends: all it acts on (the run's job queued again, its
-- retry budget, its end). A step or a lease asks nothing of it: the run's own job drives it, and
-- a lost job is the full pass's work.
DROP TRIGGER "runs_touch_updated_at" ON "runs";
CREATE TRIGGER "runs_touch_updated_at" BEFORE INSERT OR UPDATE OF
    "id", "secret_id", "kind", "trigger", "status", "idempotency_key", "version_id", "grace_ms", "attempts", "error", "started_at", "finished_at"
  ON "runs" FOR EACH ROW EXECUTE FUNCTION rekey_touch_updated_at();
