-- The sync status of each secret at each target: what the drift check last found and did
-- (src/core/drift.ts); shown by `rekey status`.
CREATE TABLE "target_syncs" (
    "secret_id" UUID NOT NULL,
    "target" TEXT NOT NULL,
    "last_checked_at" TIMESTAMP(3),
    "last_in_sync_at" TIMESTAMP(3),
    "last_drift_at" TIMESTAMP(3),
    "last_drift" TEXT,
    "last_repaired_at" TIMESTAMP(3),
    "last_error" TEXT,
    "last_error_at" TIMESTAMP(3),
    "drift_streak" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "target_syncs_pkey" PRIMARY KEY ("secret_id","target")
);

ALTER TABLE "target_syncs" ADD CONSTRAINT "target_syncs_secret_id_fkey" FOREIGN KEY ("secret_id") REFERENCES "secrets"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
