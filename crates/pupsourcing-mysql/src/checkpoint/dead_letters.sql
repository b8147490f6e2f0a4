-- The dead letters of one projection, or of every projection when it is NULL, by projection and
-- position. ? projection name (twice).
SELECT projection_name, partition_key, partition_count, position, event_id, error, attempts,
       recorded_at
FROM {dead_letters}
WHERE ? IS NULL OR projection_name = ?
ORDER BY projection_name, position
