-- Records a dead letter ($1 projection, $2-$3 partition key and count, $4 position, $5 event id,
-- $6 error, $7 attempts); a second one at the same position replaces its error and attempts.
INSERT INTO {schema}.{dead_letters} (projection_name, partition_key, partition_count, position,
                                     event_id, error, attempts)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (projection_name, position)
DO UPDATE SET error = EXCLUDED.error, attempts = EXCLUDED.attempts
