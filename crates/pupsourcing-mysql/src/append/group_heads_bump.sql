-- Moves the locked head rows of a group's appended streams to their new versions (every row
-- exists: group_heads_lock.sql locked it).
-- {rows} is (X'type', X'id', version, now) per stream, in key order.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES {rows}
ON DUPLICATE KEY UPDATE aggregate_version = VALUES(aggregate_version),
                        updated_at = VALUES(updated_at)
