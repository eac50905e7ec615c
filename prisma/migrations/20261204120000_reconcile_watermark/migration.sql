-- Incremental reconcile (src/core/reconcile.ts): each pass reads only the versions and runs
-- changed since its watermark, so updated_at must move on every change, whoever writes it
-- (Prisma's client sets it from the worker's clock, raw SQL statements may not set it at all).
-- The database's clock stamps it instead, at the moment of the write.
CREATE FUNCTION rekey_touch_updated_at() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := clock_timestamp() AT TIME ZONE 'UTC';
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER versions_touch_updated_at BEFORE INSERT OR UPDATE ON "versions"
  FOR EACH ROW EXECUTE FUNCTION rekey_touch_updated_at();
CREATE TRIGGER runs_touch_updated_at BEFORE INSERT OR UPDATE ON "runs"
  FOR EACH ROW EXECUTE FUNCTION rekey_touch_updated_at();

-- The incremental pass: rows changed since the watermark, retirements that came due since it.
CREATE INDEX "versions_updated_at_idx" ON "versions"("updated_at");
CREATE INDEX "versions_grace_ends_at_idx" ON "versions"("grace_ends_at");
CREATE INDEX "runs_updated_at_idx" ON "runs"("updated_at");
-- The full pass: open runs among every run ever recorded.
CREATE INDEX "runs_status_idx" ON "runs"("status");
