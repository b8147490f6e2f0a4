-- Every shard row of one projection (the columns of shards.sql), read in the write transaction
-- of a reshard, which checks them before it replaces them. ?1 projection name.
SELECT projection_name, shard, shard_count, owner, epoch, position, updated_at, last_error
FROM {shards}
WHERE projection_name = ?1
ORDER BY shard_count, shard
