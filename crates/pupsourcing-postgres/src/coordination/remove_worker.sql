-- Removes worker $1 and releases its shards (owner cleared, epoch bumped) in one statement,
-- hence one transaction: no shard is left owned by a worker that is gone.
WITH gone AS (
    DELETE FROM {schema}.{workers} WHERE worker_id = $1 RETURNING worker_id
), released AS (
    UPDATE {schema}.{shards}
       SET owner = NULL, epoch = epoch + 1, updated_at = now()
     WHERE owner = $1
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS workers, (SELECT count(*) FROM released) AS shards
