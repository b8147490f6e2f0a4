-- The database clock now (microseconds since the Unix epoch, UTC), the clock heartbeats are
-- stamped with.
SELECT {now}
