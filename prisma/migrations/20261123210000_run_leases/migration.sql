-- One driver per run: a worker holds a run's lease (renewed while it works) and no other
-- worker drives the run until the lease has expired. Times are the database's clock.
ALTER TABLE "runs" ADD COLUMN "lease_owner" TEXT;
ALTER TABLE "runs" ADD COLUMN "lease_until" TIMESTAMP(3);
