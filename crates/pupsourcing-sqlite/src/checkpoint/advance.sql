-- Moves a checkpoint from one position to another if it is still at the first (compare and
-- set), clearing its error. Changes one row when it moved, none when another processor got
-- there first (or the checkpoint is gone).
-- ?1 projection name, ?2 partition key, ?3 partition count, ?4 from, ?5 to,
-- ?6 now in microseconds.
UPDATE {checkpoints}
SET position = ?5, updated_at = ?6, last_error = NULL
WHERE projection_name = ?1 AND partition_key = ?2 AND partition_count = ?3 AND position = ?4
