-- Each audit chain's newest hash (src/db/audit.ts): an append takes its chain's head row with
-- INSERT ... ON CONFLICT DO UPDATE, which locks it and returns its newest committed hash in the
-- same statement that takes the chain's advisory lock, instead of a lock and a read of
-- audit_events. A trigger keeps it, so an append by a process of an older release (which
-- still reads the head from audit_events under the same advisory lock) moves it too.

-- No append between filling the heads and the trigger's first firing.
LOCK TABLE "audit_events" IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE "audit_heads" (
    "chain" TEXT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "audit_heads_pkey" PRIMARY KEY ("chain")
);

INSERT INTO "audit_heads" ("chain", "hash")
  SELECT DISTINCT ON ("chain") "chain", "hash" FROM "audit_events" ORDER BY "chain", "seq" DESC;

CREATE FUNCTION "audit_heads_follow"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "audit_heads" ("chain", "hash")
    SELECT DISTINCT ON ("chain") "chain", "hash" FROM "appended" ORDER BY "chain", "seq" DESC
  ON CONFLICT ("chain") DO UPDATE SET "hash" = EXCLUDED."hash";
  RETURN NULL;
END;
$$;
CREATE TRIGGER "audit_events_heads" AFTER INSERT ON "audit_events"
  REFERENCING NEW TABLE AS "appended" FOR EACH STATEMENT EXECUTE FUNCTION "audit_heads_follow"();
