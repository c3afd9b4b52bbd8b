-- Review tasks, a second look: SQLite's migration 017 (see ../017_task_qa.sql).

CREATE TABLE task_settings (
    task        TEXT PRIMARY KEY,
    qa_percent  BIGINT NOT NULL DEFAULT 0 CHECK (qa_percent BETWEEN 0 AND 100)
);

ALTER TABLE pipeline_steps ADD COLUMN first_by TEXT;
ALTER TABLE pipeline_steps ADD COLUMN first_at TEXT;
