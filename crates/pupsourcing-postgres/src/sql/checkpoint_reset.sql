-- Removes every checkpoint and dead letter of projection $1.
WITH checkpoints AS (
    DELETE FROM {schema}.{checkpoints} WHERE projection_name = $1
)
DELETE FROM {schema}.{dead_letters} WHERE projection_name = $1
