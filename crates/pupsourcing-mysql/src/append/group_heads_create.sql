-- Creates the head rows of a group's new appended streams at their new versions, in the write's
-- round trip, before the counter is taken: the locking read found no row, so their requests
-- were checked against version 0. A plain insert takes only an insert intention lock on the gap
-- and each new row's lock, so creators of different streams never wait for each other
-- (`INSERT ... ON DUPLICATE KEY UPDATE` deadlocks on the supremum's gap lock, see
-- write_head_insert.sql). A concurrent creator of one of the rows is waited for, then the insert
-- fails on the duplicate key, the counter statement never runs, and the group's requests run
-- alone.
-- {rows} is (X'type', X'id', version, now) per stream, in key order.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES {rows}
