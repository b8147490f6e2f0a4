-- Gives a shard to an owner (NULL: nobody) if its epoch is still the one the caller read
-- (compare and set), bumping the epoch and clearing the last error (the old owner's). Matches
-- one row or none. A batch of the old owner in flight holds the row lock (advance_shard.sql):
-- this waits for its commit, then re-checks the epoch on the committed row.
-- ? owner, ? projection name, ? count, ? shard, ? epoch.
UPDATE {shards}
SET owner = ?, epoch = epoch + 1, last_error = NULL, updated_at = {now}
WHERE projection_name = ? AND shard_count = ? AND shard = ? AND epoch = ?
