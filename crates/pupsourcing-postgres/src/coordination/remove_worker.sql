-- Removes worker $1 and releases its shards (owner cleared, epoch bumped) in one statement,
-- hence one transaction: no shard is left owned by a worker that is gone.
--
-- Lock order (mod.rs): the worker row first (its delete waits for the worker's batch in
-- flight), then its shard rows in key order, as reshards lock them, never in the order a scan
-- of the heap meets them (see remove_stale.sql). The shard rows are selected only once the
-- delete is done (its count, an InitPlan, is computed before the shard scan starts); shards
-- named after a worker without a row are released too. The lock also re-checks the owner of a
-- row changed since the snapshot (the UPDATE joins by key only), so a shard moved to another
-- worker meanwhile is not released (a_worker_removal_releases_only_the_shards_still_owned).
WITH gone AS (
    DELETE FROM {schema}.{workers} WHERE worker_id = $1 RETURNING worker_id
), owned AS (
    SELECT projection_name, shard_count, shard FROM {schema}.{shards}
     WHERE owner = $1 AND (SELECT count(*) FROM gone) >= 0
     ORDER BY projection_name, shard_count, shard
       FOR NO KEY UPDATE
), released AS (
    UPDATE {schema}.{shards} AS s
       SET owner = NULL, epoch = s.epoch + 1, updated_at = now()
      FROM owned AS o
     WHERE s.projection_name = o.projection_name AND s.shard_count = o.shard_count
       AND s.shard = o.shard
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS workers, (SELECT count(*) FROM released) AS shards
