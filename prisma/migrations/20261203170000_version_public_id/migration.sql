-- A version's public credential identifier (Issuer.publicId), so a leak report naming it
-- (an AWS Health event names an access key id) finds the version by index.
ALTER TABLE "versions" ADD COLUMN "public_id" TEXT;
CREATE INDEX "versions_public_id_idx" ON "versions"("public_id");
-- Versions issued before the column existed: aws-iam-access-key kept the id in its state.
UPDATE "versions" SET "public_id" = "issuer_state"->>'accessKeyId' WHERE "issuer_state" ? 'accessKeyId';
