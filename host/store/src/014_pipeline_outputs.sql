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

-- Events learn a fourth kind, `step` (a pipeline step entered or moved on; `entity_id`: the
-- step), so that the pipeline view's counts are live. SQLite cannot change a CHECK: the table
-- is made again with its rows (the triggers that write it name it, and still do).
PRAGMA legacy_alter_table = ON;
CREATE TABLE events_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('item', 'execution', 'annotations', 'step')),
    entity_id  INTEGER NOT NULL,
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO events_new (id, kind, entity_id, at) SELECT id, kind, entity_id, at FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
PRAGMA legacy_alter_table = OFF;

CREATE TRIGGER events_step_inserted AFTER INSERT ON pipeline_steps
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('step', NEW.id);
END;

CREATE TRIGGER events_step_updated AFTER UPDATE OF state ON pipeline_steps
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('step', NEW.id);
END;
