-- Never written or read: a leak's deadline lives in its delayed block job, rebuilt by
-- reconcile() from the version's compromised_at and the secret's leak deadline.
ALTER TABLE "runs" DROP COLUMN "deadline_at";
