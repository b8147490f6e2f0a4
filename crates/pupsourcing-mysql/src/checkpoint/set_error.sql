-- Stores (or, with NULL, clears) the error that stopped a partition, creating its checkpoint at
-- position 0 if it has none. ? projection name, ? partition key, ? partition count, ? error.
INSERT INTO {checkpoints}
    (projection_name, partition_key, partition_count, position, updated_at, last_error)
VALUES (?, ?, ?, 0, {now}, ?)
ON DUPLICATE KEY UPDATE last_error = VALUES(last_error), updated_at = VALUES(updated_at)
