-- Whether a transaction holds the counter row (an append in flight, see read/mod.rs): no row
-- when it is locked. A locking read that skips rather than waits; in autocommit mode its own
-- lock lasts for this statement only.
SELECT last_position FROM {events_counter} WHERE id = 1 FOR UPDATE SKIP LOCKED
