-- The sandbox keeps every promise (issue 8). Existing rows keep working: every new column
-- has a default that means what the old code did.

-- Native inference (code outside the wasm sandbox) is a permission the deployer grants.
-- Services deployed before it existed do not have it: grant it with
-- `prelabel service deploy PACKAGE --name NAME --allow-inference`.
ALTER TABLE services ADD COLUMN allow_inference INTEGER NOT NULL DEFAULT 0;

-- Attempts that a stopped host interrupted: they count, so that an item that kills the
-- host ends after max_attempts instead of looping through every restart.
ALTER TABLE executions ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;

-- The sha256 of the item bytes the last attempt ran on: an outcome for bytes that are no
-- longer the item's is kept as history and does not replace newer annotations.
ALTER TABLE executions ADD COLUMN item_digest TEXT;

-- `prelabel execute` runs an execution in its own process, off the queue; a scheduler
-- must not mistake it for one a killed host left running.
ALTER TABLE executions ADD COLUMN direct INTEGER NOT NULL DEFAULT 0;
-- The process that runs a direct execution, so that a scheduler can tell a live one from
-- one whose process died.
ALTER TABLE executions ADD COLUMN direct_pid INTEGER;
