-- rekey's own appends move their chain's head themselves, in the statement that inserts the
-- rows (src/db/audit.ts INSERT), so the trigger that kept audit_heads (a plpgsql call and an
-- upsert per insert) is skipped for them: their take marks the transaction with the setting
-- rekey.audit_heads_moved. Appends by processes of earlier releases, which never set it, still
-- fire the trigger, so the head follows them as before.
DROP TRIGGER "audit_events_heads" ON "audit_events";
CREATE TRIGGER "audit_events_heads" AFTER INSERT ON "audit_events"
  REFERENCING NEW TABLE AS "appended" FOR EACH STATEMENT
  WHEN (current_setting('rekey.audit_heads_moved', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION "audit_heads_follow"();
