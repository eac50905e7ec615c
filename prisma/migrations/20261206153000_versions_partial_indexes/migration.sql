-- A version's public id, fingerprint and grace end are null for most of its writes (no issuer
-- but AWS IAM names a public id; no fingerprint while issuing; no grace end until it becomes
-- previous), and each of its writes is a new row version (no HOT: each changes its state or
-- an indexed column) with an entry in every index whose predicate it meets. Their lookups
-- (`public_id = $1`, `fingerprint = $1`, `grace_ends_at >= $1 AND grace_ends_at <= $2` in the
-- reconcile pass) never ask for null, so these indexes keep the rows that have a value only:
-- 5 to 6 index entries fewer per rotation, of about 40 in the versions' indexes.
DROP INDEX "versions_public_id_idx";
CREATE INDEX "versions_public_id_idx" ON "versions"("public_id") WHERE "public_id" IS NOT NULL;
DROP INDEX "versions_fingerprint_idx";
CREATE INDEX "versions_fingerprint_idx" ON "versions"("fingerprint") WHERE "fingerprint" IS NOT NULL;
DROP INDEX "versions_grace_ends_at_idx";
CREATE INDEX "versions_grace_ends_at_idx" ON "versions"("grace_ends_at") WHERE "grace_ends_at" IS NOT NULL;
