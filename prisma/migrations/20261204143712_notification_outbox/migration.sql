-- The notification outbox (src/db/outbox.ts): a notice is written here in the transaction of
-- the state change it reports, and each worker's relay (src/notify/relay.ts) moves it to the
-- `notifications` queue under its stable id, then deletes the row. A process that dies between
-- the commit and the enqueue leaves the row for the next relay pass: at least once.
CREATE TABLE "notification_outbox" (
    "id" TEXT NOT NULL,
    "notice" JSONB NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "notification_outbox_pkey" PRIMARY KEY ("id")
);

-- The relay takes the oldest rows first.
CREATE INDEX "notification_outbox_created_at_idx" ON "notification_outbox"("created_at");
