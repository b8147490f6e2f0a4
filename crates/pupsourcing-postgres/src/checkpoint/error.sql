-- Stores (or, with NULL, clears) the error that stopped a partition ($1-$3 its key, $4 the
-- error), creating its checkpoint at position 0 if it has none.
INSERT INTO {schema}.{checkpoints} (projection_name, partition_key, partition_count, last_error)
VALUES ($1, $2, $3, $4)
ON CONFLICT (projection_name, partition_key, partition_count)
DO UPDATE SET last_error = EXCLUDED.last_error, updated_at = now()
