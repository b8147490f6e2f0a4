-- Every shard row of projection $1, locked until the transaction ends (a reshard checks them
-- against what its caller expects, then replaces them). A batch in flight on one of them holds
-- its row lock: this waits for it. The columns of shards.sql.
SELECT projection_name, shard, shard_count, owner, epoch, position, updated_at, last_error
  FROM {schema}.{shards}
 WHERE projection_name = $1
 ORDER BY shard_count, shard
   FOR UPDATE
