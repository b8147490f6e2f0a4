-- Creates a stream's head row at version 0 if it is missing, for an append in a caller's
-- transaction: in autocommit mode, on a connection other than the append's, so that the
-- caller's transaction (which may be REPEATABLE READ, and long) never holds the lock of a new
-- row that other creators would wait for. A version-0 row reads as no stream.
-- ? aggregate_type, ? aggregate_id (16 bytes), ? now in microseconds.
INSERT IGNORE INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES (?, ?, 0, ?)
