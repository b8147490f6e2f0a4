-- Gives a shard to an owner (NULL: nobody) if its epoch is still the one the caller read
-- (compare and set), bumping the epoch and clearing the last error (the old owner's). Returns the new epoch, or no row when the shard
-- changed meanwhile (or does not exist).
-- ?1 projection name, ?2 shard count, ?3 shard, ?4 expected epoch, ?5 new owner.
UPDATE {shards}
SET owner = ?5, epoch = epoch + 1, last_error = NULL, updated_at = {now}
WHERE projection_name = ?1 AND shard_count = ?2 AND shard = ?3 AND epoch = ?4
RETURNING epoch
