-- The admin API's secret health (src/api/secret-health.ts), per secret and per status filter:
-- each secret's latest finished run (one backward index step instead of a sort of its runs),
-- whether a later run followed one that gave up (the `failing` filter), and the versions
-- reported leaked (the `leaked` condition; a handful among every version ever issued).
CREATE INDEX "runs_secret_finished_idx" ON "runs"("secret_id", "finished_at" DESC NULLS LAST)
  WHERE "status" IN ('succeeded', 'rolled_back', 'failed');
CREATE INDEX "versions_compromised_idx" ON "versions"("secret_id") WHERE "compromised_at" IS NOT NULL;

-- The run that issued each version a secret's detail shows (a scan of every run without it).
CREATE INDEX "runs_version_id_idx" ON "runs"("version_id");
