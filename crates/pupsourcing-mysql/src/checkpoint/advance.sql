-- Compare-and-set of a checkpoint from one position to another, clearing its error. Matches one
-- row or none (sqlx counts matched rows: CLIENT_FOUND_ROWS). An UPDATE reads the latest
-- committed row whatever the isolation level and keeps its lock until the caller's transaction
-- ends: a concurrent advance of the same partition waits, then finds the position moved and
-- changes nothing. ? to, ? projection name, ? partition key, ? partition count, ? from.
UPDATE {checkpoints}
SET position = ?, updated_at = {now}, last_error = NULL
WHERE projection_name = ? AND partition_key = ? AND partition_count = ? AND position = ?
