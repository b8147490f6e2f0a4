-- Creates the missing rows of shards 0..$2 of projection $1: unowned, epoch 0, position $3.
-- Existing rows (their owner, epoch and checkpoint) are left as they are, and nothing is
-- created while the projection has rows of another count (only a reshard changes the count).
INSERT INTO {schema}.{shards} (projection_name, shard, shard_count, position)
SELECT $1, s, $2, $3 FROM generate_series(0, $2 - 1) AS s
 WHERE NOT EXISTS (
    SELECT 1 FROM {schema}.{shards} WHERE projection_name = $1 AND shard_count <> $2
 )
ON CONFLICT (projection_name, shard_count, shard) DO NOTHING
