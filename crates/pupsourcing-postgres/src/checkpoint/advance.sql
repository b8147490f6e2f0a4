-- Compare-and-set of a checkpoint ($1-$3 its key) from $4 to $5, clearing its error. Changes one
-- row or none. The row lock is held until the caller's transaction ends: a concurrent advance
-- of the same partition waits for it and, under READ COMMITTED, re-checks the committed position
-- and changes nothing.
UPDATE {schema}.{checkpoints}
   SET position = $5, updated_at = now(), last_error = NULL
 WHERE projection_name = $1 AND partition_key = $2 AND partition_count = $3 AND position = $4
