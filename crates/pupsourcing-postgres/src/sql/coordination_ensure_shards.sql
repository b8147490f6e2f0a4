-- Creates the missing rows of shards 0..$2 of projection $1: unowned, epoch 0, position $3.
-- Existing rows (their owner, epoch and checkpoint) are left as they are.
INSERT INTO {schema}.{shards} (projection_name, shard, shard_count, position)
SELECT $1, s, $2, $3 FROM generate_series(0, $2 - 1) AS s
ON CONFLICT (projection_name, shard_count, shard) DO NOTHING
