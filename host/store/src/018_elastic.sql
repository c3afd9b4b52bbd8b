-- Elastic instances (issue 35): a service's `concurrency` is its most instances; it keeps at
-- least `min_instances` once made, and gives back an instance idle for `idle_ms` (the memory
-- it held). Services from before keep none idle past five minutes, as new ones.

ALTER TABLE services ADD COLUMN min_instances INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN idle_ms INTEGER NOT NULL DEFAULT 300000;

-- What each worker holds, as of its last heartbeat: instances by service (JSON object), for
-- `prelabel status` across machines.
ALTER TABLE workers ADD COLUMN instances TEXT;
