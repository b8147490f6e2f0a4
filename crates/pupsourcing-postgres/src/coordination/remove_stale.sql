-- Removes the workers whose last heartbeat is more than $1 microseconds old by the database
-- clock, releasing their shards (owner cleared, epoch bumped) in the same statement. A
-- heartbeat committed meanwhile is re-checked when the row is locked (READ COMMITTED) and
-- keeps its worker.
--
-- Lock order (mod.rs): every stale worker row first, in id order; then their shard rows, in
-- key order, as reshards lock them. Never the order a scan meets them in the heap: an update
-- (a heartbeat, an assignment) writes a row's new version after rows it preceded, so two
-- statements could meet the same rows in opposite orders and deadlock (tests/coordination.rs:
-- two_stale_removals_do_not_deadlock, and the removals waiting behind or racing a reshard).
-- Each FOR UPDATE sits above its sort (LockRows over Sort, or over the primary key's index
-- scan), so rows are locked in the sorted order; FOR NO KEY UPDATE is the lock the shard
-- UPDATE takes anyway, and it is what re-checks the owner: a row changed since the snapshot is
-- re-read and skipped if no longer owned by a stale worker, while the UPDATE joins by key only
-- (tests/coordination.rs: a_stale_removal_releases_only_the_shards_still_owned). The worker
-- ids reach the shards as one array (an InitPlan, computed before the first shard row is
-- locked), so every delete is done before any shard row is held: no shard row is held while
-- a delete waits for a batch.
WITH candidates AS (
    SELECT worker_id FROM {schema}.{workers}
     WHERE last_heartbeat < clock_timestamp() - $1::bigint * interval '1 microsecond'
     ORDER BY worker_id
       FOR UPDATE
), stale AS (
    DELETE FROM {schema}.{workers}
     WHERE worker_id IN (SELECT worker_id FROM candidates)
    RETURNING worker_id
), owned AS (
    -- EXISTS first: a tick that removes no worker (nearly every tick) does not scan the shards.
    SELECT projection_name, shard_count, shard FROM {schema}.{shards}
     WHERE EXISTS (SELECT 1 FROM stale) AND owner = ANY (ARRAY(SELECT worker_id FROM stale))
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
SELECT worker_id, (SELECT count(*) FROM released) AS shards FROM stale ORDER BY worker_id
