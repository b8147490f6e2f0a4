-- Compare-and-set of shard ($1 projection, $2 count, $3 shard)'s checkpoint from $4 to $5, only
-- while the row still names owner $6 under epoch $7 (the fence). Changes one row or none; the
-- row lock is held until the caller's transaction ends, so a reassignment waits for the batch
-- and a batch after a reassignment sees the new epoch and changes nothing.
UPDATE {schema}.{shards}
   SET position = $5, updated_at = now()
 WHERE projection_name = $1 AND shard_count = $2 AND shard = $3
   AND position = $4 AND owner = $6 AND epoch = $7
