-- Records a dead letter, replacing the projection's earlier one at the same position.
-- ?1 projection name, ?2 partition key, ?3 partition count, ?4 position,
-- ?5 event id (16-byte blob), ?6 error, ?7 attempts, ?8 now in microseconds.
INSERT INTO {dead_letters} (projection_name, partition_key, partition_count, position, event_id,
                            error, attempts, recorded_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (projection_name, position) DO UPDATE
SET partition_key = excluded.partition_key,
    partition_count = excluded.partition_count,
    event_id = excluded.event_id,
    error = excluded.error,
    attempts = excluded.attempts,
    recorded_at = excluded.recorded_at
