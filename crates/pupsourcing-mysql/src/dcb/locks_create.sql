-- Creates missing lock rows, in autocommit mode on a connection of its own, so that the append
-- that needs them never holds the exclusive lock an insert takes on its new row.
-- Followed by the rows: (?), (?), ...
INSERT IGNORE INTO {events_locks} (lock_key) VALUES
