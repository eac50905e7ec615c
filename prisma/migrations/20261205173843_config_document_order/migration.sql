-- The applied document as written, in its own key order: jsonb sorts an object's keys (shorter
-- names first), and where the order means something it was lost, such as which of two grants
-- matching one subject serves it (the first in the file, docs/delivery.md). A revision stored
-- before this keeps jsonb's order until the next `rekey apply` stores the file again.
ALTER TABLE "config_revisions" ALTER COLUMN "document" SET DATA TYPE JSON USING "document"::json;
