-- The dead letters of projection $1 (of every projection when NULL), by projection and position.
SELECT projection_name, partition_key, partition_count, position, event_id, error, attempts,
       recorded_at
  FROM {schema}.{dead_letters}
 WHERE $1::text IS NULL OR projection_name = $1
 ORDER BY projection_name, position
