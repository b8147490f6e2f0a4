-- Locks a run of keys of one mode, in ascending key order (the primary key's order). Followed by
-- the keys as integer literals (k, k, ...), then "ORDER BY lock_key" and "LOCK IN SHARE MODE" or "FOR UPDATE".
SELECT lock_key FROM {events_locks} WHERE lock_key IN
