-- Gives shard ($1 projection, $2 count, $3 shard) to $4 (NULL: nobody) if its epoch is still
-- $5, bumping the epoch and clearing the last error (it was the old owner's). One row (the new
-- epoch) or none. A batch of the old owner in flight holds the row lock (advance_shard_in):
-- this waits for its commit, then re-checks the epoch.
UPDATE {schema}.{shards}
   SET owner = $4, epoch = epoch + 1, last_error = NULL, updated_at = now()
 WHERE projection_name = $1 AND shard_count = $2 AND shard = $3 AND epoch = $5
RETURNING epoch
