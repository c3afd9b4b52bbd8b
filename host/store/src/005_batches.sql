-- Batch execution (issue 10): a service's function on every item of a dataset that matches a
-- filter, queued in one transaction; its executions point at the batch, for its progress.

CREATE TABLE batches (
    id          INTEGER PRIMARY KEY,
    service     TEXT NOT NULL,
    function    TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    filters     TEXT NOT NULL,              -- JSON list of filter expressions
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

ALTER TABLE executions ADD COLUMN batch_id INTEGER REFERENCES batches(id);
CREATE INDEX executions_batch ON executions (batch_id) WHERE batch_id IS NOT NULL;
