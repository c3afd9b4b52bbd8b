-- Review (issue 10): each annotation has a review state, who set it and when; a person can
-- also draw an annotation that no service made ("manual"). SQLite cannot drop NOT NULL, so
-- the table is rebuilt: service, execution and revision become optional (NULL for a manual
-- annotation); existing rows keep everything they had and start as `pending`.

CREATE TABLE annotations_new (
    id                INTEGER PRIMARY KEY,
    item_id           INTEGER NOT NULL REFERENCES items(id),
    service_id        INTEGER,              -- NULL: drawn by a person
    service_name      TEXT,
    execution_id      INTEGER REFERENCES executions(id),
    revision_id       INTEGER REFERENCES revisions(id),
    component_digest  TEXT,
    label             TEXT NOT NULL,
    geometry          TEXT NOT NULL,        -- JSON, as annotation::Geometry
    model_name        TEXT NOT NULL,
    model_version     TEXT NOT NULL,
    confidence        REAL NOT NULL,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    review            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (review IN ('pending', 'accepted', 'rejected', 'edited', 'manual')),
    reviewed_by       TEXT,
    reviewed_at       TEXT
);

INSERT INTO annotations_new (id, item_id, service_id, service_name, execution_id, revision_id,
                             component_digest, label, geometry, model_name, model_version,
                             confidence, created_at)
     SELECT id, item_id, service_id, service_name, execution_id, revision_id, component_digest,
            label, geometry, model_name, model_version, confidence, created_at
       FROM annotations;

DROP TABLE annotations;
ALTER TABLE annotations_new RENAME TO annotations;
CREATE INDEX annotations_item ON annotations (item_id, service_id);

-- The live-update triggers of migration 003 went with the old table.
CREATE TRIGGER events_annotation_inserted AFTER INSERT ON annotations
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('annotations', NEW.item_id);
END;

CREATE TRIGGER events_annotation_deleted AFTER DELETE ON annotations
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('annotations', OLD.item_id);
END;

CREATE TRIGGER events_annotation_updated AFTER UPDATE ON annotations
BEGIN
    INSERT INTO events (kind, entity_id) VALUES ('annotations', NEW.item_id);
END;
