-- Creates the missing rows of shards 0 to ?2 - 1 of a projection: unowned, epoch 0, at the
-- start position. Existing rows are left as they are.
-- ?1 projection name, ?2 shard count, ?3 start position.
WITH RECURSIVE keys (shard) AS (
    SELECT 0
    UNION ALL
    SELECT shard + 1 FROM keys WHERE shard + 1 < ?2
)
INSERT INTO {shards} (projection_name, shard, shard_count, owner, epoch, position, updated_at)
SELECT ?1, shard, ?2, NULL, 0, ?3, {now} FROM keys WHERE true
ON CONFLICT (projection_name, shard_count, shard) DO NOTHING
