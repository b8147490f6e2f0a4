-- Moves a shard's checkpoint from one position to another, only if the row still has that
-- position AND the committing worker's fence (owner and epoch) AND that worker is still
-- registered (a worker removed as stale, or drained, never commits, even under a fence a
-- planner that listed it just before its removal gave it afterwards). Changes no row when the
-- worker lost the shard or another commit got there first.
-- ?1 projection name, ?2 shard count, ?3 shard, ?4 from, ?5 to, ?6 owner, ?7 epoch.
UPDATE {shards}
SET position = ?5, updated_at = {now}
WHERE projection_name = ?1 AND shard_count = ?2 AND shard = ?3
  AND position = ?4 AND owner = ?6 AND epoch = ?7
  AND EXISTS (SELECT 1 FROM {workers} WHERE worker_id = ?6)
