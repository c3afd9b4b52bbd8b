-- Native inference engines (issue 29): which engine a service's models run on (`auto`: ONNX
-- Runtime where it loads, else tract) and how many threads one call may use; and, per
-- execution, the engine that ran it with its version (provenance; NULL when it ran no model
-- natively, and for executions from before this migration).

ALTER TABLE services ADD COLUMN inference_engine TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE services ADD COLUMN inference_threads INTEGER NOT NULL DEFAULT 1;
ALTER TABLE executions ADD COLUMN inference_engine TEXT;
