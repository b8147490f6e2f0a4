-- Moves the locked head rows of a group's appended streams to their new versions (every row
-- exists: group_heads_create.sql created the missing ones).
-- {rows} is (?, ?, ?, ?) per stream: aggregate_type, aggregate_id (16 bytes), new version, now
-- in microseconds.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES {rows}
ON DUPLICATE KEY UPDATE aggregate_version = VALUES(aggregate_version),
                        updated_at = VALUES(updated_at)
