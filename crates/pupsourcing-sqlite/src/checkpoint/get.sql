-- One checkpoint. ?1 projection name, ?2 partition key, ?3 partition count.
SELECT projection_name, partition_key, partition_count, position, updated_at, last_error
FROM {checkpoints}
WHERE projection_name = ?1 AND partition_key = ?2 AND partition_count = ?3
