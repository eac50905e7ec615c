-- Each request that claims an Idempotency-Key makes the claim its own id (src/api/idempotency.ts):
-- it settles, releases and refreshes the row only while the row still holds that id, so a request
-- whose claim a retry took over writes nothing over the retry's. Rows of the release before get an
-- id of their own here; that release's servers, during a rolling update, insert without one (the
-- default) and settle by token and key as before.
-- AlterTable
ALTER TABLE "api_idempotency" ADD COLUMN "claim" UUID NOT NULL DEFAULT gen_random_uuid();
