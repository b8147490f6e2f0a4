-- Records a dead letter ($1 projection, $2-$3 partition key and count, $4 position, $5 event id,
-- $6 error, $7 attempts), replacing the projection's earlier one at the same position.
INSERT INTO {schema}.{dead_letters} (projection_name, partition_key, partition_count, position,
                                     event_id, error, attempts)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (projection_name, position)
DO UPDATE SET partition_key = EXCLUDED.partition_key, partition_count = EXCLUDED.partition_count,
              event_id = EXCLUDED.event_id, error = EXCLUDED.error,
              attempts = EXCLUDED.attempts, recorded_at = now()
