-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "VersionState" AS ENUM ('issuing', 'pending', 'current', 'previous', 'retired', 'revoked', 'failed', 'compromised');

-- CreateEnum
CREATE TYPE "DeliveryStatus" AS ENUM ('pending', 'deployed', 'verified', 'retired', 'failed');

-- CreateEnum
CREATE TYPE "RunKind" AS ENUM ('rotation', 'retirement', 'revocation');

-- CreateEnum
CREATE TYPE "RunStatus" AS ENUM ('running', 'succeeded', 'rolled_back', 'failed', 'skipped');

-- CreateTable
CREATE TABLE "config_revisions" (
    "id" SERIAL NOT NULL,
    "hash" TEXT NOT NULL,
    "document" JSONB NOT NULL,
    "applied_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "config_revisions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "secrets" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "spec" JSONB NOT NULL,
    "spec_hash" TEXT NOT NULL,
    "removed_at" TIMESTAMP(3),
    "last_promoted_at" TIMESTAMP(3),
    "version_counter" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "secrets_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "versions" (
    "id" UUID NOT NULL,
    "secret_id" UUID NOT NULL,
    "number" INTEGER NOT NULL,
    "state" "VersionState" NOT NULL,
    "fingerprint" TEXT,
    "store_version_id" TEXT,
    "issuer_state" JSONB,
    "grace_ends_at" TIMESTAMP(3),
    "promoted_at" TIMESTAMP(3),
    "retired_at" TIMESTAMP(3),
    "revoked_at" TIMESTAMP(3),
    "compromised_at" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "versions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "deliveries" (
    "version_id" UUID NOT NULL,
    "target" TEXT NOT NULL,
    "status" "DeliveryStatus" NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "updated_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "deliveries_pkey" PRIMARY KEY ("version_id","target")
);

-- CreateTable
CREATE TABLE "runs" (
    "id" UUID NOT NULL,
    "secret_id" UUID NOT NULL,
    "kind" "RunKind" NOT NULL,
    "trigger" TEXT NOT NULL,
    "status" "RunStatus" NOT NULL,
    "step" TEXT NOT NULL,
    "idempotency_key" TEXT NOT NULL,
    "version_id" UUID,
    "grace_ms" INTEGER,
    "deadline_at" TIMESTAMP(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "started_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    "finished_at" TIMESTAMP(3),

    CONSTRAINT "runs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "leak_reports" (
    "id" UUID NOT NULL,
    "source" TEXT NOT NULL,
    "delivery_id" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "secret_id" UUID,
    "version_id" UUID,
    "outcome" TEXT NOT NULL,
    "received_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "blocked_at" TIMESTAMP(3),

    CONSTRAINT "leak_reports_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_events" (
    "seq" BIGSERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "secret" TEXT,
    "version_id" TEXT,
    "run_id" TEXT,
    "data" JSONB NOT NULL,
    "prev_hash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "audit_events_pkey" PRIMARY KEY ("seq")
);

-- CreateTable
CREATE TABLE "local_store_versions" (
    "id" UUID NOT NULL,
    "secret" TEXT NOT NULL,
    "version_id" UUID NOT NULL,
    "sealed" BYTEA NOT NULL,
    "key_id" TEXT NOT NULL,
    "stages" TEXT[],
    "destroyed_at" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "local_store_versions_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "secrets_name_key" ON "secrets"("name");

-- CreateIndex
CREATE INDEX "versions_secret_id_state_idx" ON "versions"("secret_id", "state");

-- CreateIndex
CREATE INDEX "versions_fingerprint_idx" ON "versions"("fingerprint");

-- CreateIndex
CREATE UNIQUE INDEX "versions_secret_id_number_key" ON "versions"("secret_id", "number");

-- CreateIndex
CREATE UNIQUE INDEX "runs_idempotency_key_key" ON "runs"("idempotency_key");

-- CreateIndex
CREATE INDEX "runs_secret_id_kind_status_idx" ON "runs"("secret_id", "kind", "status");

-- CreateIndex
CREATE INDEX "leak_reports_fingerprint_idx" ON "leak_reports"("fingerprint");

-- CreateIndex
CREATE UNIQUE INDEX "leak_reports_source_delivery_id_fingerprint_key" ON "leak_reports"("source", "delivery_id", "fingerprint");

-- CreateIndex
CREATE UNIQUE INDEX "local_store_versions_secret_version_id_key" ON "local_store_versions"("secret", "version_id");

-- AddForeignKey
ALTER TABLE "versions" ADD CONSTRAINT "versions_secret_id_fkey" FOREIGN KEY ("secret_id") REFERENCES "secrets"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_version_id_fkey" FOREIGN KEY ("version_id") REFERENCES "versions"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "runs" ADD CONSTRAINT "runs_secret_id_fkey" FOREIGN KEY ("secret_id") REFERENCES "secrets"("id") ON DELETE RESTRICT ON UPDATE CASCADE;


-- Hand-written: what Prisma cannot express.

-- Invariant 4: at most one current version per secret (promotion swaps in one transaction).
CREATE UNIQUE INDEX "versions_one_current_per_secret" ON "versions"("secret_id") WHERE "state" = 'current';

-- At most one active rotation per secret: concurrent triggers collapse into one run.
CREATE UNIQUE INDEX "runs_one_active_rotation_per_secret" ON "runs"("secret_id") WHERE "kind" = 'rotation' AND "status" = 'running';

-- The audit log is append-only.
CREATE FUNCTION "audit_events_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER "audit_events_no_update" BEFORE UPDATE OR DELETE ON "audit_events"
  FOR EACH ROW EXECUTE FUNCTION "audit_events_append_only"();
CREATE TRIGGER "audit_events_no_truncate" BEFORE TRUNCATE ON "audit_events"
  FOR EACH STATEMENT EXECUTE FUNCTION "audit_events_append_only"();

