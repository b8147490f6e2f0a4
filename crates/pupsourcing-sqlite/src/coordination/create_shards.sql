-- Creates shards 0 to ?2 - 1 of a projection, unowned, at position ?3 with epoch ?4: the new
-- shards of a reshard, after delete_shards.sql in the same write transaction.
-- ?1 projection name, ?2 shard count, ?3 position, ?4 epoch.
WITH RECURSIVE keys (shard) AS (
    SELECT 0
    UNION ALL
    SELECT shard + 1 FROM keys WHERE shard + 1 < ?2
)
INSERT INTO {shards} (projection_name, shard, shard_count, owner, epoch, position, updated_at)
SELECT ?1, shard, ?2, NULL, ?4, ?3, {now} FROM keys WHERE true
