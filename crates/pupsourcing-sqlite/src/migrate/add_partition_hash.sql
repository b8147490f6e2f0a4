-- Adds the partition hash to an events table created before it existed: run by migrate once,
-- when the column is missing (SQLite's ALTER TABLE ADD COLUMN has no IF NOT EXISTS).
-- The events stored until then hash to 0, so every partitioned projection finds them in its
-- partition 0 (of any count); events appended afterwards get their real hash.
ALTER TABLE {events}
ADD COLUMN partition_hash INTEGER NOT NULL DEFAULT 0 CHECK (partition_hash BETWEEN 0 AND 4294967295)
