-- People, second step (issue 32): logins' sessions, the audit log, who a review task is
-- assigned to, and which reviewer holds a waiting item (until when).

-- A login: the cookie's secret kept as its sha256 only, as tokens are.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest      TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_ms  INTEGER NOT NULL               -- unix milliseconds
);

-- Who did what: every review decision and every admin action, with the account (or `owner`:
-- the CLI and the bootstrap token) and the time.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,                     -- e.g. annotation.review, task.complete, user.add
    target  TEXT NOT NULL,                     -- what it was done to, as its name or id
    detail  TEXT                               -- JSON, or NULL
);

CREATE TABLE task_assignees (
    task     TEXT NOT NULL,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (task, user_id)
);

-- A waiting item handed to one reviewer; it goes back to the queue when the time is up.
ALTER TABLE pipeline_steps ADD COLUMN held_by INTEGER REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE pipeline_steps ADD COLUMN held_until_ms INTEGER;
