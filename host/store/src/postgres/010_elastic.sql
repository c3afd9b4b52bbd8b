-- Elastic instances: SQLite's migration 018 (see ../018_elastic.sql).

ALTER TABLE services ADD COLUMN min_instances BIGINT NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN idle_ms BIGINT NOT NULL DEFAULT 300000;

-- What each worker holds, as of its last heartbeat: instances by service (JSON object), for
-- `prelabel status` across machines.
ALTER TABLE workers ADD COLUMN instances TEXT;
