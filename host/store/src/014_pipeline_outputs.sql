-- What pipelines' nodes produce beyond annotations (issue 31): a review task's decision on the
-- step it held (who, when, completed or discarded), and the items a function made (stored as
-- blobs, put into a dataset by the node after it).

ALTER TABLE pipeline_steps ADD COLUMN task TEXT;            -- a task node's step: the task holding it
ALTER TABLE pipeline_steps ADD COLUMN outcome TEXT;         -- a task's: completed | discarded
ALTER TABLE pipeline_steps ADD COLUMN decided_by TEXT;
ALTER TABLE pipeline_steps ADD COLUMN decided_at TEXT;
CREATE INDEX pipeline_steps_task ON pipeline_steps (task, state) WHERE task IS NOT NULL;

CREATE TABLE execution_outputs (
    id           INTEGER PRIMARY KEY,
    execution_id INTEGER NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    digest       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mimetype     TEXT NOT NULL,
    metadata     TEXT NOT NULL,          -- JSON: {"system": ..., "user": what the function gave}
    UNIQUE (execution_id, position)
);
