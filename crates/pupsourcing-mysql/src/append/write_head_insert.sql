-- Creates a new stream's head row at its new version, in the write's round trip of an append of
-- the store's own (READ COMMITTED): its locking head read found no row, so the append checked
-- its expected version against 0. A plain insert takes only an insert intention lock on the gap
-- and the new row's own lock, so creators of different streams never wait for each other
-- (`INSERT ... ON DUPLICATE KEY UPDATE` deadlocked on the supremum's gap lock). A concurrent
-- creator of the same stream, which would invalidate that check, makes it wait for that
-- creator's end and then fail on the duplicate key, before the counter statement runs: the
-- append is rolled back and runs again (`Outcome::Raced`), finding the row.
-- {stream}: the stream's literals; {version}: the new version.
INSERT INTO {aggregate_heads} (aggregate_type, aggregate_id, aggregate_version, updated_at)
VALUES ({stream}, {version}, {now})
