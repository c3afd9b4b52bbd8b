-- Workers (issue 15): every scheduler process registers itself and renews its lease with a
-- heartbeat; what it runs names it. A worker whose heartbeat is older than its lease is gone
-- (killed, stopped, cut off), and its running executions go back on the queue, counted as
-- interrupted as when a single host restarts. Times in milliseconds since the epoch, by the
-- database's clock (one clock for every machine).

CREATE TABLE workers (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,            -- host:pid, for `prelabel status`
    home          TEXT NOT NULL,            -- host:/path of its home (one scheduler per home)
    lease_ms      INTEGER NOT NULL,
    started_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    heartbeat_ms  INTEGER NOT NULL,
    stopped_at    TEXT                      -- set when it stopped cleanly
);

-- The worker that runs an execution, and which of its claims this is: a result is stored
-- only by the claim that still holds the execution (a stopped worker's late result is not).
ALTER TABLE executions ADD COLUMN worker_id INTEGER;
ALTER TABLE executions ADD COLUMN claim INTEGER;
