-- Every checkpoint, by projection, then partition count, then partition key.
SELECT projection_name, partition_key, partition_count, position, updated_at, last_error
  FROM {schema}.{checkpoints}
 ORDER BY projection_name, partition_count, partition_key
