-- Prelabel's first schema. Times are UTC text (ISO 8601), durations milliseconds.

CREATE TABLE packages (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Each push is a new revision: 1, 2, 3 ... per package.
CREATE TABLE revisions (
    id                INTEGER PRIMARY KEY,
    package_id        INTEGER NOT NULL REFERENCES packages(id),
    revision          INTEGER NOT NULL,
    version           TEXT NOT NULL,
    manifest          TEXT NOT NULL,        -- the manifest, as JSON
    component_digest  TEXT NOT NULL,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (package_id, revision)
);

CREATE TABLE revision_artifacts (
    revision_id  INTEGER NOT NULL REFERENCES revisions(id),
    name         TEXT NOT NULL,
    digest       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    PRIMARY KEY (revision_id, name)
);

CREATE TABLE services (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    package_id            INTEGER NOT NULL REFERENCES packages(id),
    revision_id           INTEGER NOT NULL REFERENCES revisions(id),
    previous_revision_id  INTEGER REFERENCES revisions(id),
    init_inputs           TEXT NOT NULL,    -- JSON object: name -> value
    concurrency           INTEGER NOT NULL,
    timeout_ms            INTEGER NOT NULL,
    max_attempts          INTEGER NOT NULL,
    memory_mb             INTEGER NOT NULL,
    init_timeout_ms       INTEGER NOT NULL,
    max_item_mb           INTEGER NOT NULL,
    max_annotations       INTEGER NOT NULL,
    log_kb                INTEGER NOT NULL,
    paused                INTEGER NOT NULL DEFAULT 0,
    generation            INTEGER NOT NULL DEFAULT 1,  -- bumped by every deploy
    created_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE triggers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    service_id  INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    function    TEXT NOT NULL,
    actions     TEXT NOT NULL,              -- JSON list: created, updated
    dataset     TEXT,                       -- NULL: every dataset
    filters     TEXT NOT NULL,              -- JSON list of filter expressions
    mode        TEXT NOT NULL CHECK (mode IN ('once', 'always')),
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE items (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id),
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mimetype    TEXT NOT NULL,
    metadata    TEXT NOT NULL,              -- JSON: {"system": {...}, "user": {...}}
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (dataset_id, name)
);

CREATE TABLE executions (
    id            INTEGER PRIMARY KEY,
    service_id    INTEGER NOT NULL,             -- no foreign key: history outlives a deleted service
    service_name  TEXT NOT NULL,
    trigger_id    INTEGER,
    item_id       INTEGER NOT NULL REFERENCES items(id),
    function      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'success', 'failed', 'timed-out', 'canceled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    revision_id   INTEGER REFERENCES revisions(id),   -- the revision of the last attempt
    error         TEXT,
    logs          TEXT NOT NULL DEFAULT '',
    queued_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at    TEXT,
    finished_at   TEXT,
    duration_ms   INTEGER
);
CREATE INDEX executions_queue ON executions (service_id, status, id);

-- `once` triggers: at most one execution per item per trigger, ever.
CREATE TABLE trigger_runs (
    trigger_id  INTEGER NOT NULL REFERENCES triggers(id) ON DELETE CASCADE,
    item_id     INTEGER NOT NULL REFERENCES items(id),
    PRIMARY KEY (trigger_id, item_id)
);

CREATE TABLE annotations (
    id                INTEGER PRIMARY KEY,
    item_id           INTEGER NOT NULL REFERENCES items(id),
    service_id        INTEGER NOT NULL,     -- no foreign key: annotations outlive a deleted service
    service_name      TEXT NOT NULL,
    execution_id      INTEGER NOT NULL REFERENCES executions(id),
    revision_id       INTEGER NOT NULL REFERENCES revisions(id),
    component_digest  TEXT NOT NULL,
    label             TEXT NOT NULL,
    geometry          TEXT NOT NULL,        -- JSON, as annotation::Geometry
    model_name        TEXT NOT NULL,
    model_version     TEXT NOT NULL,
    confidence        REAL NOT NULL,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX annotations_item ON annotations (item_id, service_id);
