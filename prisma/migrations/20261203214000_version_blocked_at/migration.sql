-- When a leaked version was first refused by every target: a leak report inserted after its
-- revocation finished takes its blocked_at from here instead of staying NULL for ever.
ALTER TABLE "versions" ADD COLUMN "blocked_at" TIMESTAMP(3);
