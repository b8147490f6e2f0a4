-- Stores the error that stopped a shard's processor, while its owner still holds the shard
-- under the same epoch (a fenced-out processor's error is not its successor's).
-- ?1 projection name, ?2 shard count, ?3 shard, ?4 owner, ?5 epoch, ?6 error.
UPDATE {shards}
SET last_error = ?6, updated_at = {now}
WHERE projection_name = ?1 AND shard_count = ?2 AND shard = ?3 AND owner = ?4 AND epoch = ?5
