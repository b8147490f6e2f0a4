-- Waits for the counter row (a shared lock request), so that the transaction holding it shows
-- in InnoDB's lock waits (stall_holder.sql); the lock waits are the only place MariaDB names a
-- lock's holder. Killed (KILL QUERY) once the holder is named. In autocommit mode: a granted
-- lock lasts for this statement only.
SELECT last_position FROM {events_counter} WHERE id = 1 LOCK IN SHARE MODE
