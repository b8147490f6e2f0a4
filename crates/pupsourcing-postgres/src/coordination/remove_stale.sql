-- Removes the workers whose last heartbeat is more than $1 microseconds old by the database
-- clock, releasing their shards (owner cleared, epoch bumped) in the same statement. A
-- heartbeat committed meanwhile is re-checked by the DELETE (READ COMMITTED) and keeps its
-- worker.
WITH stale AS (
    DELETE FROM {schema}.{workers}
     WHERE last_heartbeat < clock_timestamp() - $1::bigint * interval '1 microsecond'
    RETURNING worker_id
), released AS (
    UPDATE {schema}.{shards}
       SET owner = NULL, epoch = epoch + 1, updated_at = now()
     WHERE owner IN (SELECT worker_id FROM stale)
    RETURNING 1
)
SELECT worker_id, (SELECT count(*) FROM released) AS shards FROM stale ORDER BY worker_id
