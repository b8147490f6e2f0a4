-- Stores the error that stopped a shard's processor while its owner still holds it under the
-- same epoch (a fenced-out processor's error is not its successor's).
-- ? error, ? projection name, ? count, ? shard, ? owner, ? epoch.
UPDATE {shards}
SET last_error = ?, updated_at = {now}
WHERE projection_name = ? AND shard_count = ? AND shard = ? AND owner = ? AND epoch = ?
