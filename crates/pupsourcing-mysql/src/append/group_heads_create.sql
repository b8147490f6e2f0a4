-- Creates the head rows of a group's new streams at version 0 (which reads as no stream), locked
-- by the insert until the group ends. A plain insert takes only an insert intention lock on the
-- gap and each new row's lock, so creators of different streams never wait for each other
-- (`INSERT ... ON DUPLICATE KEY UPDATE` deadlocks on the supremum's gap lock, see
-- head_insert.sql). A concurrent creator of one of the rows is waited for, then the insert fails
-- on the duplicate key and the group runs its requests alone.
-- {rows} is (?, ?, 0, ?) per stream, in key order: aggregate_type, aggregate_id (16 bytes), now
-- in microseconds.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES {rows}
