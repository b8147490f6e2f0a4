-- The workers whose last heartbeat is older than the threshold by the database clock, and that
-- cutoff: a plain read (it waits for no lock); each is then deleted by delete_worker.sql, which
-- checks the cutoff again on the latest committed row. ? threshold in microseconds.
SELECT w.worker_id, c.cutoff
FROM (SELECT {now} - ? AS cutoff) AS c
LEFT JOIN {workers} AS w ON w.last_heartbeat < c.cutoff
ORDER BY w.worker_id
