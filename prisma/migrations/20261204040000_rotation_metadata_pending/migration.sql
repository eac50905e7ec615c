-- AlterTable
ALTER TABLE "secrets" ADD COLUMN     "metadata_error" TEXT,
ADD COLUMN     "metadata_pending_at" TIMESTAMP(3);
