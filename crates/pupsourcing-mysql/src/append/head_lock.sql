-- Locks a stream's head row exclusively until the transaction ends, creating it at version 0
-- for a new stream (a concurrent creator waits on the new row's lock, then finds it).
-- ? aggregate_type, ? aggregate_id (16 bytes), ? now in microseconds.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES (?, ?, 0, ?)
ON DUPLICATE KEY UPDATE aggregate_version = aggregate_version
