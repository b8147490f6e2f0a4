-- Creates shards 0 to count - 1 of a projection, unowned, at a position with an epoch above
-- every old one: the new shards of a reshard, after delete_shards.sql in the same transaction.
-- (The recursion limit is lifted as in ensure_shards.sql.)
-- ? count, ? projection name, ? count, ? epoch, ? position.
/*M!100300 SET STATEMENT max_recursive_iterations = 4294967295 FOR */
INSERT /*+ SET_VAR(cte_max_recursion_depth = 4294967295) */ INTO {shards}
    (projection_name, shard, shard_count, owner, epoch, position, updated_at)
WITH RECURSIVE k (shard) AS (
    SELECT 0
    UNION ALL
    SELECT shard + 1 FROM k WHERE shard + 1 < ?
)
SELECT ?, k.shard, ?, NULL, ?, ?, {now} FROM k
