-- A projection partition's checkpoint ($1 projection, $2 partition key, $3 partition count),
-- created at position 0 when it has none. One row, or none when another session created it
-- after this statement's snapshot was taken (the insert waited for it): the caller asks again.
WITH created AS (
    INSERT INTO {schema}.{checkpoints} (projection_name, partition_key, partition_count)
    VALUES ($1, $2, $3)
    ON CONFLICT (projection_name, partition_key, partition_count) DO NOTHING
    RETURNING position, updated_at, last_error
)
SELECT position, updated_at, last_error FROM created
UNION ALL
SELECT position, updated_at, last_error
  FROM {schema}.{checkpoints}
 WHERE projection_name = $1 AND partition_key = $2 AND partition_count = $3
