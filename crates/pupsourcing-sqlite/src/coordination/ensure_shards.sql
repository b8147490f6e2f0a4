-- Creates the missing rows of shards 0 to ?2 - 1 of a projection: unowned, epoch 0, at the
-- start position. Existing rows are left as they are, and nothing is created while the
-- projection has rows of another count (only a reshard changes the count).
-- ?1 projection name, ?2 shard count, ?3 start position.
WITH RECURSIVE keys (shard) AS (
    SELECT 0
    UNION ALL
    SELECT shard + 1 FROM keys WHERE shard + 1 < ?2
)
INSERT INTO {shards} (projection_name, shard, shard_count, owner, epoch, position, updated_at)
SELECT ?1, shard, ?2, NULL, 0, ?3, {now} FROM keys
WHERE NOT EXISTS (SELECT 1 FROM {shards} WHERE projection_name = ?1 AND shard_count <> ?2)
ON CONFLICT (projection_name, shard_count, shard) DO NOTHING
