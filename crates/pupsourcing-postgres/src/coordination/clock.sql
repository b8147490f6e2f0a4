-- The database's clock now, the clock heartbeats are stamped with.
SELECT clock_timestamp()
