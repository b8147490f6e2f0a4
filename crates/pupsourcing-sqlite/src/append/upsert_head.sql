-- Moves a stream's head to its new version, creating the row for a new stream.
-- ?1 aggregate_type, ?2 aggregate_id (16-byte blob), ?3 new version, ?4 now in microseconds.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
SET aggregate_version = excluded.aggregate_version,
    updated_at = excluded.updated_at
