-- Every shard row of one projection, locked until the transaction ends, in key order (a
-- reshard checks them, then replaces them; a batch in flight holds its row: this waits for it).
-- The columns of shards.sql. ? projection name.
SELECT projection_name, shard, shard_count, owner, epoch, position, updated_at, last_error
FROM {shards}
WHERE projection_name = ?
ORDER BY shard_count, shard
FOR UPDATE
