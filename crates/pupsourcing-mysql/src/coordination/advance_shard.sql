-- Compare-and-set of a shard's checkpoint, only while the row still names the committing
-- worker under the epoch of its assignment (the fence); after lock_worker.sql, in the batch's
-- transaction. Matches one row or none; the row lock is held until the transaction ends, so a
-- reassignment waits for the batch, and a batch after a reassignment finds the new epoch.
-- ? to, ? projection name, ? count, ? shard, ? from, ? owner, ? epoch.
UPDATE {shards}
SET position = ?, updated_at = {now}
WHERE projection_name = ? AND shard_count = ? AND shard = ?
  AND position = ? AND owner = ? AND epoch = ?
