-- A removed secret keeps the provider bindings of the config revision it was last applied
-- in, so leak reports, `rekey revoke`, reconcile and `rekey decommission` still reach its
-- live versions (src/resolver.ts).
ALTER TABLE "secrets" ADD COLUMN "bound_revision_id" INTEGER;
-- Secrets removed before the column existed: the newest revision that still declared them
-- (a per-client key `family/client` is declared as a client of its family).
UPDATE "secrets" s SET "bound_revision_id" = (
  SELECT max(r."id") FROM "config_revisions" r
   WHERE (r."document"->'secrets') ? s."name"
      OR (strpos(s."name", '/') > 0
          AND (r."document"->'secrets'->split_part(s."name", '/', 1)->'clients') ? substr(s."name", strpos(s."name", '/') + 1))
) WHERE s."removed_at" IS NOT NULL;
