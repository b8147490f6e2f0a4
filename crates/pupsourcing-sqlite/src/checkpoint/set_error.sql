-- Stores (or, with NULL, clears) the error that stopped a partition, creating its checkpoint at
-- position 0 if it has none.
-- ?1 projection name, ?2 partition key, ?3 partition count, ?4 the error or NULL,
-- ?5 now in microseconds.
INSERT INTO {checkpoints}
    (projection_name, partition_key, partition_count, position, updated_at, last_error)
VALUES (?1, ?2, ?3, 0, ?5, ?4)
ON CONFLICT (projection_name, partition_key, partition_count) DO UPDATE
SET last_error = excluded.last_error,
    updated_at = excluded.updated_at
