-- AlterTable
ALTER TABLE "versions" ADD COLUMN     "last_used_at" TIMESTAMP(3);
