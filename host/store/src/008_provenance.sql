-- Provenance (issue 12): what an execution ran with, enough to run it again. The init values
-- its instance was initialised with, the host's version, and the result exactly as the guest
-- returned it (after the host's checks), which later runs and reviews do not change.
-- Executions from before this migration have none of them (NULL): they export without them and
-- `prelabel replay` says why it cannot compare.

ALTER TABLE executions ADD COLUMN init_inputs TEXT;
ALTER TABLE executions ADD COLUMN host_version TEXT;
ALTER TABLE executions ADD COLUMN result TEXT;
