-- A projection batch: the event columns of the partition's in-scope events after its checkpoint
-- and up to a gap-free head read by an earlier statement (never by this one: see read/mod.rs).
-- ? after (exclusive), ? head (inclusive). checkpoint/scope.rs adds the scope's and the
-- partition's filters, then the order and the limit.
SELECT {columns}
FROM {events} AS e
WHERE e.global_position > ? AND e.global_position <= ?
