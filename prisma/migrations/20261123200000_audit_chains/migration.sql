-- One hash chain per secret instead of one for everything: appends for different
-- secrets no longer wait on each other. Existing rows form the '' chain, as before.
ALTER TABLE "audit_events" ADD COLUMN "chain" TEXT NOT NULL DEFAULT '';
CREATE INDEX "audit_events_chain_seq_idx" ON "audit_events"("chain", "seq");
