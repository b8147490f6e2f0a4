-- Every shard row, by projection, count and shard.
SELECT projection_name, shard, shard_count, owner, epoch, position, updated_at, last_error
  FROM {schema}.{shards}
 ORDER BY projection_name, shard_count, shard
