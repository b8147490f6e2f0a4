-- Creates a checkpoint at position 0 unless it exists.
-- ?1 projection name, ?2 partition key, ?3 partition count, ?4 now in microseconds.
INSERT INTO {checkpoints} (projection_name, partition_key, partition_count, position, updated_at)
VALUES (?1, ?2, ?3, 0, ?4)
ON CONFLICT (projection_name, partition_key, partition_count) DO NOTHING
