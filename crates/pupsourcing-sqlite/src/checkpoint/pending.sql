-- The head of the pending count: how many in-scope events a partition has not handled, and
-- when the oldest of them happened (microseconds since the Unix epoch, UTC). The filter is
-- scope.sql.
SELECT COUNT(*), MIN(e.created_at)
FROM {events} AS e
