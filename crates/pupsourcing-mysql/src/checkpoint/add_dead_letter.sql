-- Records a dead letter, replacing the projection's earlier one at the same position.
-- ? projection name, ? partition key, ? partition count, ? position, ? event id (16 bytes),
-- ? error, ? attempts.
INSERT INTO {dead_letters} (projection_name, partition_key, partition_count, position, event_id,
                            error, attempts, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, {now})
ON DUPLICATE KEY UPDATE partition_key = VALUES(partition_key),
    partition_count = VALUES(partition_count), event_id = VALUES(event_id),
    error = VALUES(error), attempts = VALUES(attempts), recorded_at = VALUES(recorded_at)
