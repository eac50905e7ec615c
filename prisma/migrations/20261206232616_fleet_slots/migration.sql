-- Fleet commands' claims on store and target slots (src/cli/fleet.ts): taken in a short transaction
-- under the fleet slots' lock and counted by every fleet command until the requests' runs are recorded,
-- instead of one transaction holding that lock (and a connection, and vacuum's horizon) across a pass.
-- CreateTable
CREATE TABLE "fleet_slots" (
    "id" UUID NOT NULL,
    "instances" TEXT[],
    "expires_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "fleet_slots_pkey" PRIMARY KEY ("id")
);

