//! The coordination conformance suite (the orchestrator's store) on PostgreSQL, plus the
//! schema's coordination tables in the migration output.

mod common;

use pupsourcing_core::StoreConfig;

pupsourcing_testkit::coordination_conformance!(common::fresh_store, server);

/// Not in the macro: the reshard is held by an uncommitted row of the new count, in SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ensure_racing_a_reshard_creates_nothing() {
    use pupsourcing_core::EventStore;
    use pupsourcing_postgres::PgEventStore;
    let Some(store) = common::fresh_store().await else { return };
    let insert = format!(
        "INSERT INTO \"{}\".projection_shards (projection_name, shard, shard_count, epoch, \
         position) VALUES ('totals', 0, 3, 0, 0)",
        store.config().schema
    );
    let hold = async |tx: &mut <PgEventStore as EventStore>::Transaction| {
        sqlx::query(sqlx::AssertSqlSafe(insert)).execute(&mut **tx).await.unwrap();
    };
    pupsourcing_testkit::coordination::an_ensure_racing_a_reshard_creates_nothing(store, hold)
        .await;
}

/// Not in the macro: the removal in flight is the worker row's DELETE, in SQL, left uncommitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removal_waits_for_the_batch_in_flight() {
    use pupsourcing_core::EventStore;
    use pupsourcing_postgres::PgEventStore;
    let Some(store) = common::fresh_store().await else { return };
    let delete =
        format!("DELETE FROM \"{}\".workers WHERE worker_id = 'worker-a'", store.config().schema);
    let delete = async |tx: &mut <PgEventStore as EventStore>::Transaction| {
        sqlx::query(sqlx::AssertSqlSafe(delete)).execute(&mut **tx).await.unwrap();
    };
    pupsourcing_testkit::coordination::a_removal_waits_for_the_batch_in_flight(store, delete).await;
}

#[test]
fn the_migration_creates_the_coordination_tables() {
    let config = StoreConfig::default()
        .schema("shop")
        .unwrap()
        .workers_table("orch_workers")
        .unwrap()
        .shards_table("orch_shards")
        .unwrap()
        .recreate_lock_table("orch_lock")
        .unwrap();
    let sql = pupsourcing_postgres::migration_sql(&config);
    for table in ["orch_workers", "orch_shards", "orch_lock"] {
        let create = format!(r#"CREATE TABLE IF NOT EXISTS "shop"."{table}""#);
        assert!(sql.contains(&create), "{create}");
    }
    let defaults = pupsourcing_postgres::migration_sql(&StoreConfig::default());
    for table in ["workers", "projection_shards", "recreate_lock"] {
        let create = format!(r#"CREATE TABLE IF NOT EXISTS "public"."{table}""#);
        assert!(defaults.contains(&create), "{create}");
    }
}

/// Migrating twice is harmless and keeps the generation (the singleton row is inserted once).
#[tokio::test]
async fn migrating_again_keeps_the_coordination_state() {
    use pupsourcing_core::coordination::CoordinationStore;
    let Some(store) = common::fresh_store().await else { return };
    assert_eq!(store.begin_generation(0).await.unwrap(), Some(1));
    store.migrate().await.unwrap();
    assert_eq!(store.generation().await.unwrap().number, 1);
}

/// The lease of a fenced batch (`idle_in_transaction_session_timeout`, set for its transaction
/// only): a batch left idle past it is ended by the server (its commit fails, the checkpoint
/// stays), the next batch on the pool commits, and a later transaction on a session that ran a
/// leased batch is not limited (the setting ended with that batch's commit or rollback). One
/// connection in the pool, so that each transaction reuses the session of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_ends_only_its_own_idle_batch() {
    use std::time::Duration;

    use pupsourcing_core::EventStore;
    use pupsourcing_core::coordination::{CoordinationStore, ShardId, WorkerState};
    use pupsourcing_postgres::PgEventStore;
    use sqlx::postgres::PgPoolOptions;

    let config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    if common::store_with(config.clone()).await.is_none() {
        return;
    }
    let one = PgPoolOptions::new().max_connections(1).connect(&common::url()).await.unwrap();
    let store = PgEventStore::new(one, config);
    store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = ShardId { projection: "totals".into(), shard: 0, count: 1 };
    let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();
    let lease = Duration::from_millis(300);
    let idle = || tokio::time::sleep(Duration::from_secs(1));
    let limit = async |tx: &mut <PgEventStore as EventStore>::Transaction| -> String {
        let show = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout");
        show.fetch_one(&mut **tx).await.unwrap()
    };

    // Leased batches that end in time, by commit and by rollback, leave no limit behind.
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 0, 5, lease).await.unwrap());
    assert_eq!(limit(&mut tx).await, "300ms", "set for the batch");
    store.commit(tx).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 5, 6, lease).await.unwrap());
    store.rollback(tx).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(limit(&mut tx).await, "0", "the next transaction on the session has no limit");
    idle().await;
    assert_eq!(limit(&mut tx).await, "0", "and survives sitting idle");
    store.commit(tx).await.unwrap();

    // A leased batch left idle past its lease is ended: nothing of it stays.
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 5, 9, lease).await.unwrap());
    idle().await;
    assert!(store.commit(tx).await.is_err(), "the server ended the idle batch");
    let row = store.shards().await.unwrap().remove(0);
    assert_eq!(row.position, 5, "the ended batch moved nothing");
    // The next batch (a processor's retry from the checkpoint) gets a live session.
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 5, 9, lease).await.unwrap());
    store.commit(tx).await.unwrap();
    assert_eq!(store.shards().await.unwrap()[0].position, 9);
}

/// A migrated store in a new schema whose sessions carry the schema's name as their
/// `application_name`, so that `pg_stat_activity` tells them from other tests' sessions (a
/// statement's text there is cut at `track_activity_query_size`, before the schema's name in
/// statements with long comments). `None` when the server is unreachable.
async fn named_store() -> Option<pupsourcing_postgres::PgEventStore> {
    let schema = common::unique_schema();
    let config = StoreConfig::default().schema(&schema).unwrap();
    common::store_with(config.clone()).await?;
    let options: sqlx::postgres::PgConnectOptions = common::url().parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options.application_name(&schema))
        .await
        .unwrap();
    Some(pupsourcing_postgres::PgEventStore::new(pool, config))
}

/// Waits (at most 10 s) until `n` sessions of `store` (a [`named_store`]) wait for a lock, or,
/// when `holder` is given, until `n` sessions wait for that session.
async fn await_waits(store: &pupsourcing_postgres::PgEventStore, n: i64, holder: Option<i32>) {
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                    WHERE application_name = $1 AND wait_event_type = 'Lock' \
                      AND ($2::int IS NULL OR $2 = ANY(pg_blocking_pids(pid)))";
    let name = store.config().schema.to_string();
    for _ in 0..1000 {
        let count: i64 = sqlx::query_scalar(waiting)
            .bind(&name)
            .bind(holder)
            .fetch_one(store.pool())
            .await
            .unwrap();
        if count >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no {n} sessions waiting (for {holder:?}) within 10 s");
}

/// The live rows of `table` in the order a sequential scan meets them (by `ctid`), named by
/// the text of `column`.
async fn heap_order(
    store: &pupsourcing_postgres::PgEventStore,
    table: &str,
    column: &str,
) -> Vec<String> {
    let sql =
        format!("SELECT {column}::text FROM \"{}\".{table} ORDER BY ctid", store.config().schema);
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(store.pool()).await.unwrap()
}

/// A removal releasing two shards of a projection while a reshard of it locks them,
/// deterministically. The reshard locks the projection's rows in key order (shard 0, then 1).
/// Shard 0's row was updated after shard 1's, so its live version lies after shard 1's in the
/// heap, and a release scanning the table (`UPDATE .. WHERE owner ..`) meets shard 1 first.
/// With shard 0 held by a transaction of the test, the reshard waits for it first, then the
/// removal (shard 1 locked, if it locks in heap order) queues behind it; once the hold ends,
/// the reshard takes shard 0 and waits for shard 1 while the removal waits for shard 0: a
/// deadlock, one of them failing with 40P01. Locking in key order, the removal holds no shard
/// row while it waits for shard 0: the reshard commits, then the removal finds the rows gone.
/// `stale`: the removal is `remove_stale_workers`, else `remove_worker`.
async fn a_removal_waiting_behind_a_reshard(stale: bool) {
    use std::time::Duration;

    use pupsourcing_core::EventStore;
    use pupsourcing_core::coordination::{CoordinationStore, ShardId, WorkerState};

    let Some(store) = named_store().await else { return };
    store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
    store.ensure_shards("totals", 2, 0).await.unwrap();
    let mut old = Vec::new();
    for k in [1, 0] {
        let id = ShardId { projection: "totals".into(), shard: k, count: 2 };
        let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();
        old.push((id, fence));
    }
    let order = heap_order(&store, "projection_shards", "shard").await;
    assert_eq!(order, ["1", "0"], "a scan meets shard 1 first");

    let mut hold = store.begin().await.unwrap();
    let lock = format!(
        "SELECT 1 FROM \"{}\".projection_shards WHERE projection_name = 'totals' AND shard = 0 \
         FOR NO KEY UPDATE",
        store.config().schema
    );
    sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *hold).await.unwrap();
    let reshard = {
        let store = store.clone();
        tokio::spawn(async move { store.reshard("totals", &old, 3, 0).await })
    };
    await_waits(&store, 1, None).await;
    let removal = {
        let store = store.clone();
        tokio::spawn(async move {
            if stale {
                let removed = store.remove_stale_workers(Duration::ZERO).await?;
                assert_eq!(removed, ["worker-a"]);
                Ok(())
            } else {
                store.remove_worker("worker-a").await
            }
        })
    };
    await_waits(&store, 2, None).await;
    store.commit(hold).await.unwrap();

    let limit = Duration::from_secs(10);
    let resharded = tokio::time::timeout(limit, reshard).await.unwrap().unwrap();
    let removed = tokio::time::timeout(limit, removal).await.unwrap().unwrap();
    assert!(resharded.expect("the reshard does not fail"), "the reshard commits");
    removed.expect("the removal does not fail");
    assert!(store.workers().await.unwrap().is_empty(), "the worker is gone");
    let rows = store.shards().await.unwrap();
    assert_eq!(rows.len(), 3, "the new count's rows");
    assert!(rows.iter().all(|row| row.id.count == 3 && row.owner.is_none()), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_removal_waiting_behind_a_reshard_does_not_deadlock() {
    a_removal_waiting_behind_a_reshard(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_removal_waiting_behind_a_reshard_does_not_deadlock() {
    a_removal_waiting_behind_a_reshard(false).await;
}

/// The same race without held transactions, many rounds: 300 shards of a projection owned by
/// a stale worker, assigned in descending key order (in a fresh heap each round, so that every
/// new row version goes after the one before: a scan meets them from the last key to the
/// first), then a stale removal and a reshard of the projection started together. Whoever
/// comes second waits for the first when both lock in key order; a removal locking in heap
/// order meets the reshard in the middle: a deadlock within a few rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_removal_racing_a_reshard_does_not_deadlock() {
    use std::sync::Arc;
    use std::time::Duration;

    use pupsourcing_core::coordination::{CoordinationStore, Fence, WorkerState};

    const SHARDS: u32 = 300;
    let Some(store) = common::fresh_store().await else { return };
    let shards = format!("\"{}\".projection_shards", store.config().schema);
    let truncate = format!("TRUNCATE {shards}");
    // One round trip of single-row updates (one implicit transaction), the last key first.
    let assign: String = (0..SHARDS)
        .rev()
        .map(|k| {
            format!(
                "UPDATE {shards} SET owner = 'worker-a', epoch = epoch + 1 \
                 WHERE projection_name = 'totals' AND shard = {k};"
            )
        })
        .collect();
    let descending: Vec<String> = (0..SHARDS).rev().map(|k| k.to_string()).collect();
    for round in 0..30 {
        sqlx::raw_sql(sqlx::AssertSqlSafe(truncate.clone())).execute(store.pool()).await.unwrap();
        store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
        store.ensure_shards("totals", SHARDS, 0).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(assign.clone())).execute(store.pool()).await.unwrap();
        let order = heap_order(&store, "projection_shards", "shard").await;
        assert_eq!(order, descending, "round {round}: a scan meets the last key first");
        let old: Vec<_> = store
            .shards()
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.id, Fence { owner: "worker-a".into(), epoch: row.epoch }))
            .collect();
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let removal = {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.remove_stale_workers(Duration::ZERO).await
            })
        };
        let reshard = {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.reshard("totals", &old, SHARDS + 1, 0).await
            })
        };
        let removed = removal.await.unwrap();
        let resharded = reshard.await.unwrap();
        let removed = removed.unwrap_or_else(|e| panic!("round {round}: the removal: {e}"));
        assert_eq!(removed, ["worker-a"], "round {round}");
        let resharded = resharded.unwrap_or_else(|e| panic!("round {round}: the reshard: {e}"));
        // The reshard replaced the rows if it came first; else the epochs it expected moved.
        let count = if resharded { SHARDS + 1 } else { SHARDS };
        let rows = store.shards().await.unwrap();
        assert_eq!(rows.len(), count as usize, "round {round}");
        assert!(rows.iter().all(|row| row.id.count == count), "round {round}: one count");
        assert!(rows.iter().all(|row| row.owner.is_none()), "round {round}: all released");
    }
}

/// Two stale removals of the same workers, deterministically. Each removal's DELETE scanned
/// the workers table in heap order, and a row written while it stays stale moves after the
/// others (its new version), so two removals whose snapshots straddle that write met the rows
/// in different orders. Here batches of `w1` and `w3` are in flight (their `FOR KEY SHARE` of
/// the worker row, as `advance.sql` takes it), which the removals' deletes wait for:
/// - removal A, all four stale in its snapshot, waits for `w1`'s batch;
/// - `w1` and `w3` heartbeat (a heartbeat does not wait for a batch), and `w2`'s row is written
///   with its stale heartbeat (a heartbeat stamped before a long wait);
/// - `w1`'s batch ends: A skips `w1` (fresh), deletes `w2`, waits for `w3`'s batch;
/// - removal B, which sees `w4` then `w2` in the heap, deletes `w4` and waits for A on `w2`;
/// - `w3`'s batch ends: A skips `w3` and, in heap order, waits for B on `w4`: a deadlock.
///
/// Locking the stale rows in id order, B waits for A on `w2` holding nothing A wants.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stale_removals_do_not_deadlock() {
    use std::time::Duration;

    use pupsourcing_core::EventStore;
    use pupsourcing_core::coordination::{CoordinationStore, WorkerState};

    let Some(store) = named_store().await else { return };
    let workers = format!("\"{}\".workers", store.config().schema);
    for worker in ["w1", "w2", "w3", "w4"] {
        store.register_worker(worker, 1, WorkerState::Running).await.unwrap();
    }
    let age = format!("UPDATE {workers} SET last_heartbeat = now() - interval '1 hour'");
    sqlx::query(sqlx::AssertSqlSafe(age)).execute(store.pool()).await.unwrap();
    let threshold = Duration::from_secs(60);
    let batch = async |worker: &str| {
        let mut tx = store.begin().await.unwrap();
        let lock = format!("SELECT 1 FROM {workers} WHERE worker_id = '{worker}' FOR KEY SHARE");
        sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *tx).await.unwrap();
        let pid: i32 =
            sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *tx).await.unwrap();
        (tx, pid)
    };
    let removal = || {
        let store = store.clone();
        tokio::spawn(async move { store.remove_stale_workers(threshold).await })
    };
    let (batch_1, pid_1) = batch("w1").await;
    let (batch_3, pid_3) = batch("w3").await;

    let first = removal();
    await_waits(&store, 1, Some(pid_1)).await;
    assert!(store.heartbeat("w1", WorkerState::Running).await.unwrap());
    assert!(store.heartbeat("w3", WorkerState::Running).await.unwrap());
    let rewrite = format!("UPDATE {workers} SET state = state WHERE worker_id = 'w2'");
    sqlx::query(sqlx::AssertSqlSafe(rewrite)).execute(store.pool()).await.unwrap();
    let order = heap_order(&store, "workers", "worker_id").await;
    assert_eq!(order, ["w4", "w1", "w3", "w2"], "a new scan meets w4 before w2");

    store.commit(batch_1).await.unwrap();
    await_waits(&store, 1, Some(pid_3)).await;
    let second = removal();
    await_waits(&store, 2, None).await;
    store.commit(batch_3).await.unwrap();

    let limit = Duration::from_secs(10);
    let first = tokio::time::timeout(limit, first).await.unwrap().unwrap();
    let second = tokio::time::timeout(limit, second).await.unwrap().unwrap();
    let mut removed = first.expect("the first removal does not fail");
    removed.extend(second.expect("the second removal does not fail"));
    removed.sort();
    assert_eq!(removed, ["w2", "w4"], "each stale worker removed once");
    let left: Vec<String> = store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(left, ["w1", "w3"], "the workers that heartbeat stay");
}

/// A removal releases only the shards its removed worker still owns when it locks them, though
/// its snapshot is older: here the removal waits for the worker's batch in flight (on shard 2),
/// and meanwhile a planner moves shard 1 to `worker-b`. The removal's snapshot still names
/// `worker-a` as shard 1's owner, and its release (`UPDATE .. FROM owned`) joins the rows by key
/// only, so it is the lock in `owned` (`FOR NO KEY UPDATE`: after the wait it re-reads the
/// row's newest version and re-checks the owner) that leaves shard 1 with `worker-b`. Shard 2
/// is released from the version the batch wrote (its position kept), every released shard's
/// epoch bumped once. `stale`: the removal is `remove_stale_workers`, else `remove_worker`.
async fn a_removal_releases_only_the_shards_still_owned(stale: bool) {
    use std::time::Duration;

    use pupsourcing_core::EventStore;
    use pupsourcing_core::coordination::{CoordinationStore, ShardId, WorkerState};

    let Some(store) = named_store().await else { return };
    for worker in ["worker-a", "worker-b"] {
        store.register_worker(worker, 1, WorkerState::Running).await.unwrap();
    }
    let age = format!(
        "UPDATE \"{}\".workers SET last_heartbeat = now() - interval '1 hour' \
         WHERE worker_id = 'worker-a'",
        store.config().schema
    );
    sqlx::query(sqlx::AssertSqlSafe(age)).execute(store.pool()).await.unwrap();
    store.ensure_shards("totals", 3, 0).await.unwrap();
    let id = |k| ShardId { projection: "totals".into(), shard: k, count: 3 };
    let mut fences = Vec::new();
    for k in 0..3 {
        fences.push(store.assign_shard(&id(k), 0, Some("worker-a")).await.unwrap().unwrap());
    }

    let lease = Duration::from_secs(30);
    let mut batch = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut batch, &id(2), &fences[2], 0, 5, lease).await.unwrap());
    let pid: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *batch).await.unwrap();
    let removal = {
        let store = store.clone();
        tokio::spawn(async move {
            if stale {
                let removed = store.remove_stale_workers(Duration::from_secs(60)).await?;
                assert_eq!(removed, ["worker-a"]);
                Ok(())
            } else {
                store.remove_worker("worker-a").await
            }
        })
    };
    await_waits(&store, 1, Some(pid)).await;
    let moved = store.assign_shard(&id(1), fences[1].epoch, Some("worker-b")).await.unwrap();
    let moved = moved.expect("shard 1 moves while the removal waits");
    store.commit(batch).await.unwrap();
    let removed = tokio::time::timeout(Duration::from_secs(10), removal).await.unwrap().unwrap();
    removed.expect("the removal does not fail");

    let workers: Vec<String> = store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(workers, ["worker-b"]);
    let rows = store.shards().await.unwrap();
    let state: Vec<_> = rows
        .iter()
        .map(|row| (row.id.shard, row.owner.as_deref(), row.epoch, row.position))
        .collect();
    assert_eq!(
        state,
        [(0, None, 2, 0), (1, Some("worker-b"), moved.epoch, 0), (2, None, 2, 5)],
        "shard 1 stays moved (epoch {}), shards 0 and 2 released once",
        moved.epoch
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_removal_releases_only_the_shards_still_owned() {
    a_removal_releases_only_the_shards_still_owned(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_removal_releases_only_the_shards_still_owned() {
    a_removal_releases_only_the_shards_still_owned(false).await;
}
