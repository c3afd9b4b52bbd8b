-- Named secrets (issue 11): values a download sends as a header (an API token), set with
-- `prelabel secret set` and named, never copied, by what uses them. A table of their own, so
-- that nothing that lists or exports other rows can carry one. A dataset's `headers` maps a
-- header name to the secret whose value it sends with the dataset's downloads.

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

ALTER TABLE datasets ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
