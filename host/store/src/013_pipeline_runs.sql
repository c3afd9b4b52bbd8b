-- Items through pipelines (issue 31): a run per item event a pipeline's source takes, on the
-- version that was newest then; a step per node the item reached, at most one (the unique key
-- is what makes "each item passes each node once" hold across crashes and retries). A
-- function node's step is its execution's (`executions.pipeline_step_id`).

CREATE TABLE pipeline_runs (
    id          INTEGER PRIMARY KEY,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    version_id  INTEGER NOT NULL REFERENCES pipeline_versions(id) ON DELETE CASCADE,
    item_id     INTEGER NOT NULL REFERENCES items(id),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE pipeline_steps (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    node        TEXT NOT NULL,
    item_id     INTEGER NOT NULL REFERENCES items(id),
    state       TEXT NOT NULL,              -- queued (its execution says more), waiting, done, failed
    error       TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (run_id, node)
);

ALTER TABLE executions ADD COLUMN pipeline_step_id INTEGER REFERENCES pipeline_steps(id);
CREATE INDEX executions_pipeline_step ON executions (pipeline_step_id) WHERE pipeline_step_id IS NOT NULL;
