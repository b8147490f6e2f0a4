-- SQLite's clock now, the clock heartbeats are stamped with (microseconds since the epoch).
SELECT {now}
