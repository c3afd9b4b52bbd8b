-- Native inference engines: SQLite's migration 011 (see ../011_inference.sql).

ALTER TABLE services ADD COLUMN inference_engine TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE services ADD COLUMN inference_threads BIGINT NOT NULL DEFAULT 1;
ALTER TABLE executions ADD COLUMN inference_engine TEXT;
