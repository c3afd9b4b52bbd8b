-- Review tasks, a second look (issue 32): a share of the items one reviewer completes goes to
-- another before it moves on. The task's share, and on the step the first review.

CREATE TABLE task_settings (
    task        TEXT PRIMARY KEY,
    qa_percent  INTEGER NOT NULL DEFAULT 0 CHECK (qa_percent BETWEEN 0 AND 100)
);

ALTER TABLE pipeline_steps ADD COLUMN first_by TEXT;       -- who completed it first
ALTER TABLE pipeline_steps ADD COLUMN first_at TEXT;
