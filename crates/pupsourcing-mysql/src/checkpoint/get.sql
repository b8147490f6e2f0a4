-- One checkpoint. ? projection name, ? partition key, ? partition count.
SELECT projection_name, partition_key, partition_count, position, updated_at, last_error
FROM {checkpoints}
WHERE projection_name = ? AND partition_key = ? AND partition_count = ?
