-- Stores $6 as the last error of shard ($1 projection, $2 count, $3 shard) while owner $4
-- still holds it under epoch $5 (a fenced-out processor's error is not its successor's).
UPDATE {schema}.{shards}
   SET last_error = $6, updated_at = now()
 WHERE projection_name = $1 AND shard_count = $2 AND shard = $3 AND owner = $4 AND epoch = $5
