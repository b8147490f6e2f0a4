-- The dead letters of one projection (?1), or of every projection when ?1 is NULL, by
-- projection and position.
SELECT projection_name, partition_key, partition_count, position, event_id, error, attempts,
       recorded_at
FROM {dead_letters}
WHERE ?1 IS NULL OR projection_name = ?1
ORDER BY projection_name, position
