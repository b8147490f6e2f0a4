-- A partition's lag: how many in-scope events it has not handled, and when the oldest of them
-- happened (microseconds since the Unix epoch, UTC). ? after (exclusive), ? a gap-free head
-- read by an earlier statement. checkpoint/scope.rs adds the scope's and the partition's filters.
SELECT COUNT(*), MIN(e.created_at)
FROM {events} AS e
WHERE e.global_position > ? AND e.global_position <= ?
