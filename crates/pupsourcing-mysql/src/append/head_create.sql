-- Creates a stream's head row at version 0 if it is missing: in autocommit mode, on a
-- connection other than the append's, so that the append never holds the exclusive lock of a
-- new row's insert (concurrent creators would then deadlock on InnoDB's gap locks, as
-- `INSERT ... ON DUPLICATE KEY UPDATE` does). A version-0 row reads as no stream.
-- ? aggregate_type, ? aggregate_id (16 bytes), ? now in microseconds.
INSERT IGNORE INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES (?, ?, 0, ?)
