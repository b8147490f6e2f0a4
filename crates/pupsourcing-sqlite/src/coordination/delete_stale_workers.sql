-- Removes the workers whose last heartbeat is older than the threshold by the database clock,
-- returning their ids. ?1 threshold in microseconds.
DELETE FROM {workers}
WHERE last_heartbeat < {now} - ?1
RETURNING worker_id
