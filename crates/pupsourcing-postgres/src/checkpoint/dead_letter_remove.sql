-- Removes the dead letter of projection $1 at position $2.
DELETE FROM {schema}.{dead_letters} WHERE projection_name = $1 AND position = $2
