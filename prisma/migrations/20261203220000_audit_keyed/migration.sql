-- The audit chain is keyed: rows carry the id of the REKEY_AUDIT_KEY whose HMAC their hash
-- is. Rows written before keep key_id NULL and their plain SHA-256; new rows must be keyed
-- (NOT VALID: the constraint checks inserts from now on, not the rows already there).
ALTER TABLE "audit_events" ADD COLUMN "key_id" TEXT;
ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_keyed" CHECK ("key_id" IS NOT NULL) NOT VALID;
