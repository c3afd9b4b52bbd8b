-- Changes as events (issue 10): the HTTP API's live updates read this table, so that a change
-- made by any process on the home (a CLI upload, a `prelabel work`) reaches an open page.
-- Written by triggers, so that no code path can forget to record one; pruned by the server.

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('item', 'execution', 'annotations')),
    entity_id  INTEGER NOT NULL,    -- the item's or the execution's id
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TRIGGER events_item_inserted AFTER INSERT ON items
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('item', NEW.id);
END;

CREATE TRIGGER events_item_updated AFTER UPDATE OF digest, metadata ON items
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('item', NEW.id);
END;

CREATE TRIGGER events_execution_inserted AFTER INSERT ON executions
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('execution', NEW.id);
END;

CREATE TRIGGER events_execution_updated AFTER UPDATE OF status, attempts ON executions
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('execution', NEW.id);
END;

-- One event per item and statement would be ideal; SQLite has row triggers only, so a result
-- of N boxes writes N events, which the server folds into one per item.
CREATE TRIGGER events_annotation_inserted AFTER INSERT ON annotations
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('annotations', NEW.item_id);
END;

CREATE TRIGGER events_annotation_deleted AFTER DELETE ON annotations
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('annotations', OLD.item_id);
END;
