-- Replaces every shard row of projection $1 by shards 0..$2 at position $3, unowned, epoch $4
-- (above every old epoch). Run after lock_shards.sql in the same transaction, once
-- the locked rows were checked; the old rows have another count, so no key collides.
WITH gone AS (
    DELETE FROM {schema}.{shards} WHERE projection_name = $1
)
INSERT INTO {schema}.{shards} (projection_name, shard, shard_count, epoch, position)
SELECT $1, s, $2, $4, $3 FROM generate_series(0, $2 - 1) AS s
