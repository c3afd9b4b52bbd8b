-- Instance types and cold starts (issue 35): the named class a service was deployed on, shown
-- beside the values it gave (memory_mb, inference_threads); and, per execution, how long
-- making a new instance for it took (its `init` included), none when it ran on a warm one.
-- Rows from before have neither.

ALTER TABLE services ADD COLUMN instance_type TEXT;
ALTER TABLE executions ADD COLUMN cold_start_ms BIGINT;
