-- Locks the head rows of a group's streams, creating the missing ones at version 0 (which
-- reads as no stream), in one statement: a duplicate key takes the existing row's lock
-- exclusively, and a new row is locked by its insert. Rows come sorted by key (the primary key's
-- order), so that groups and single appends, which lock at most one head, never wait for each
-- other in a cycle. A concurrent creator of the same row is waited for, then its row is locked.
-- {rows} is (?, ?, 0, ?) per stream: aggregate_type, aggregate_id (16 bytes), now in
-- microseconds.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES {rows}
ON DUPLICATE KEY UPDATE aggregate_version = aggregate_version
