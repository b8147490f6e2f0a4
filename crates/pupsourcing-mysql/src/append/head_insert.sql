-- Creates a new stream's head row at version 0 inside the store's own (READ COMMITTED)
-- transaction: a plain insert takes only an insert intention lock on the gap and the new
-- row's own lock, so creators of different streams never wait for each other. A concurrent
-- creator of the same stream waits for this row, then fails on the duplicate key and runs its
-- append again (`Outcome::Raced`).
-- ? aggregate_type, ? aggregate_id (16 bytes), ? now in microseconds.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES (?, ?, 0, ?)
