-- Creates the missing rows of shards 0 to count - 1 of a projection: unowned, epoch 0, at the
-- start position. Existing rows are left as they are, and nothing is created while the
-- projection has rows of another count (only a reshard changes the count). The recursion limit
-- (MariaDB's max_recursive_iterations, MySQL's cte_max_recursion_depth: 1,000 by default) is
-- lifted for this statement: MariaDB runs the /*M! */ comment, MySQL the SET_VAR hint.
-- ? count, ? projection name, ? count, ? start position, ? projection name, ? count.
/*M!100300 SET STATEMENT max_recursive_iterations = 4294967295 FOR */
INSERT /*+ SET_VAR(cte_max_recursion_depth = 4294967295) */ IGNORE INTO {shards}
    (projection_name, shard, shard_count, owner, epoch, position, updated_at)
WITH RECURSIVE k (shard) AS (
    SELECT 0
    UNION ALL
    SELECT shard + 1 FROM k WHERE shard + 1 < ?
)
SELECT ?, k.shard, ?, NULL, 0, ?, {now} FROM k
WHERE NOT EXISTS (SELECT 1 FROM {shards} WHERE projection_name = ? AND shard_count <> ?)
