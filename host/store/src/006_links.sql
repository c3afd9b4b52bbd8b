-- Linked items (issue 11): an item may point at an http(s) URL that the host downloads when an
-- execution needs it. Until then its `digest` is '' (or the sha256 the link gave, which the
-- download must match) and its blob is absent; after it, the blob is stored like an upload's.
-- A dataset linked with `--allow-private` may reach loopback and private addresses.

ALTER TABLE items ADD COLUMN url TEXT;
ALTER TABLE datasets ADD COLUMN allow_private INTEGER NOT NULL DEFAULT 0;
