//! The coordination conformance suite (the orchestrator's store) on MySQL / MariaDB, plus
//! what is particular to it: the coordination tables in the migration, the batch lease
//! (`idle_transaction_timeout` on MariaDB), and the worker lock rows batches hold.

mod common;

use std::time::Duration;

use pupsourcing_core::EventStore;
use pupsourcing_core::coordination::{CoordinationStore, RecreatePhase, ShardId, WorkerState};
use pupsourcing_core::{StoreConfig, ValidationError};
use pupsourcing_mysql::{MySqlEventStore, sqlx};

pupsourcing_testkit::coordination_conformance!(common::fresh_store, server);

/// The idle limit of a batch transaction in these tests (long: no test sits idle that long).
const LEASE: Duration = Duration::from_secs(60);

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
    let sql = pupsourcing_mysql::migration_sql(&config);
    for table in ["orch_workers", "orch_shards", "orch_lock", "orch_workers_locks"] {
        let create = format!("CREATE TABLE IF NOT EXISTS `shop`.`{table}`");
        assert!(sql.contains(&create), "{create}");
    }
    let cascade = "CONSTRAINT `orch_workers_locks_fk` FOREIGN KEY (worker_id) REFERENCES \
                   `shop`.`orch_workers` (worker_id)\n        ON DELETE CASCADE";
    assert!(sql.contains(cascade), "the lock rows go with the workers rows");
    let defaults = pupsourcing_mysql::migration_sql(&StoreConfig::default());
    for table in ["workers", "projection_shards", "recreate_lock", "projection_checkpoints"] {
        let create = format!("CREATE TABLE IF NOT EXISTS `{table}`");
        assert!(defaults.contains(&create), "{create}");
    }
}

/// Migrating twice is harmless and keeps the generation (the singleton row is inserted once).
#[tokio::test]
async fn migrating_again_keeps_the_coordination_state() {
    let Some(store) = common::fresh_store().await else { return };
    assert_eq!(store.begin_generation(0).await.unwrap(), Some(1));
    store.migrate().await.unwrap();
    assert_eq!(store.generation().await.unwrap().number, 1);
}

/// Worker ids longer than the shared limit are refused up front, by every call taking one.
#[tokio::test]
async fn long_worker_ids_are_refused() {
    let Some(store) = common::fresh_store().await else { return };
    let long = "w".repeat(pupsourcing_core::coordination::MAX_WORKER_ID_LEN + 1);
    let err = store.register_worker(&long, 1, WorkerState::Running).await.unwrap_err();
    assert!(matches!(
        err,
        pupsourcing_core::Error::Validation(ValidationError::TooLong { field: "worker id", .. })
    ));
    assert!(store.workers().await.unwrap().is_empty());
    let longest = "w".repeat(pupsourcing_core::coordination::MAX_WORKER_ID_LEN);
    store.register_worker(&longest, 1, WorkerState::Running).await.unwrap();
    assert_eq!(store.workers().await.unwrap()[0].id, longest);
}

/// The lease of a fenced batch (MariaDB's `idle_transaction_timeout`, whole seconds): a
/// batch left idle past it is ended by the server (its commit fails, the checkpoint stays), the
/// next batch on the pool commits, and the store's next transaction on a session that ran a
/// leased batch is not limited. One connection in the pool, so that each transaction reuses the
/// session of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_ends_only_its_own_idle_batch() {
    let Some(setup) = common::fresh_store().await else { return };
    let options = pupsourcing_core::ConnectOptions::new().max_connections(1);
    let store = MySqlEventStore::connect_with(&common::url(), setup.config().clone(), options)
        .await
        .unwrap();
    store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = ShardId { projection: "totals".into(), shard: 0, count: 1 };
    let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();
    let lease = Duration::from_millis(300);
    let idle = || tokio::time::sleep(Duration::from_millis(2500));
    let limit = async |tx: &mut <MySqlEventStore as EventStore>::Transaction| -> u64 {
        let show = sqlx::query_scalar("SELECT @@idle_transaction_timeout");
        show.fetch_one(&mut **tx).await.unwrap()
    };

    // Leased batches that end in time, by commit and by rollback, leave no limit behind.
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 0, 5, lease).await.unwrap());
    assert_eq!(limit(&mut tx).await, 1, "set for the batch, in whole seconds");
    store.commit(tx).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 5, 6, lease).await.unwrap());
    store.rollback(tx).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(limit(&mut tx).await, 0, "the next transaction on the session has no limit");
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    idle().await;
    assert_eq!(limit(&mut tx).await, 0, "and survives sitting idle");
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

/// The worker lock row of a batch commit (locked shared; deleted with the workers row by the
/// foreign key): the testkit's race, with the removal in flight held open in SQL (deleting the
/// workers row deletes its lock row too).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removal_waits_for_the_batch_in_flight() {
    let Some(store) = common::fresh_store().await else { return };
    let delete =
        format!("DELETE FROM `{}`.workers WHERE worker_id = 'worker-a'", store.config().schema);
    let delete = async |tx: &mut <MySqlEventStore as EventStore>::Transaction| {
        sqlx::query(sqlx::AssertSqlSafe(delete)).execute(&mut **tx).await.unwrap();
    };
    pupsourcing_testkit::coordination::a_removal_waits_for_the_batch_in_flight(store, delete).await;
}

/// A database migrated by a version before the worker lock rows, with a worker of that version
/// registered (a workers row, no lock row): `migrate` run again creates the table. The old
/// worker's batch (locking its workers row, as that version does) still holds up a removal; a
/// worker of this version in that state commits nothing and its heartbeat reports it gone
/// (it stops with `Evicted`); registering again gives it its lock row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_registered_before_the_lock_rows_commits_nothing() {
    let Some(store) = common::fresh_store().await else { return };
    let db = format!("`{}`", store.config().schema);
    let exec = async |sql: String| {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    };
    exec(format!("DROP TABLE {db}.workers_locks")).await;
    let older = |worker: &str| {
        format!(
            "INSERT INTO {db}.workers (worker_id, generation, state, started_at, last_heartbeat) \
             VALUES ('{worker}', 1, 'running', 0, 0)"
        )
    };
    exec(older("old-a")).await;
    exec(older("old-b")).await;
    assert!(!store.schema_status().await.unwrap().is_applied(), "the lock rows are missing");
    store.migrate().await.unwrap();
    assert!(store.schema_status().await.unwrap().is_applied(), "migrate creates them");

    // A batch of the older version, on old-a's workers row: its removal waits for it.
    store.ensure_shards("totals", 2, 0).await.unwrap();
    let id = |shard| ShardId { projection: "totals".into(), shard, count: 2 };
    let fence_a = store.assign_shard(&id(0), 0, Some("old-a")).await.unwrap().unwrap();
    let mut old_batch = store.begin().await.unwrap();
    let lock = format!("SELECT 1 FROM {db}.workers WHERE worker_id = 'old-a' LOCK IN SHARE MODE");
    sqlx::query(sqlx::AssertSqlSafe(lock)).fetch_one(&mut *old_batch).await.unwrap();
    let removal = {
        let store = store.clone();
        tokio::spawn(async move { store.remove_worker("old-a").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!removal.is_finished(), "the removal waits for the older version's batch");
    store.commit(old_batch).await.unwrap();
    removal.await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_shard_in(&mut tx, &id(0), &fence_a, 0, 5, LEASE).await.unwrap());
    store.rollback(tx).await.unwrap();

    // old-b, run by this version without registering again: no commit, and evicted.
    let fence_b = store.assign_shard(&id(1), 0, Some("old-b")).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_shard_in(&mut tx, &id(1), &fence_b, 0, 5, LEASE).await.unwrap());
    store.rollback(tx).await.unwrap();
    assert!(!store.heartbeat("old-b", WorkerState::Running).await.unwrap(), "evicted");
    // Registering again (the same id) gives it its lock row: it commits, and is alive.
    store.register_worker("old-b", 1, WorkerState::Running).await.unwrap();
    assert!(store.heartbeat("old-b", WorkerState::Running).await.unwrap());
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id(1), &fence_b, 0, 5, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();
    assert_eq!(store.shards().await.unwrap()[1].position, 5);
}

/// The conformance race of two `ensure_shards` of different counts
/// (`concurrent_ensures_of_two_counts_create_one_count`) on a schema made by hand without the
/// recreate lock's row, which the ensures lock first: the lock creates the row, and still only
/// one count's rows are created; the generation still reads 0, running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ensures_without_the_recreate_row_create_one_count() {
    let Some(store) = common::fresh_store().await else { return };
    let missing = format!("DELETE FROM `{}`.recreate_lock", store.config().schema);
    for round in 0..30 {
        sqlx::query(sqlx::AssertSqlSafe(missing.clone())).execute(store.pool()).await.unwrap();
        let projection = format!("p{round}");
        let counts =
            pupsourcing_testkit::coordination::ensure_two_counts_at_once(&store, &projection).await;
        assert_eq!(counts.len(), 1, "round {round}: rows of counts {counts:?}");
    }
    let generation = store.generation().await.unwrap();
    assert_eq!((generation.number, generation.phase), (0, RecreatePhase::Running));
}

/// The conformance test `an_ensure_racing_a_reshard_creates_nothing`: the reshard is held by
/// an uncommitted row of the new count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ensure_racing_a_reshard_creates_nothing() {
    let Some(store) = common::fresh_store().await else { return };
    let insert = format!(
        "INSERT INTO `{}`.projection_shards (projection_name, shard, shard_count, epoch, \
         position, updated_at) VALUES ('totals', 0, 3, 0, 0, 0)",
        store.config().schema
    );
    let hold = async |tx: &mut <MySqlEventStore as EventStore>::Transaction| {
        sqlx::query(sqlx::AssertSqlSafe(insert)).execute(&mut **tx).await.unwrap();
    };
    pupsourcing_testkit::coordination::an_ensure_racing_a_reshard_creates_nothing(store, hold)
        .await;
}

/// A stale removal of several workers deletes every workers row (and so lock row) before it
/// releases any shard row. A batch of the second worker, holding that worker's lock row (the
/// first statement of `advance_shard_in`, `lock_worker.sql`) under a fence from before its
/// shard moved to the first worker, then updates the shard row: the removal holds no shard row
/// yet, so the batch is fenced out at once, and the removal goes on once the batch ends. With
/// the first worker's shards released before the second worker's row is deleted, the removal
/// held that shard row while it waited for the batch's lock row: a deadlock, and InnoDB rolled
/// one of them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_removal_of_two_workers_does_not_deadlock_a_batch() {
    let Some(store) = common::fresh_store().await else { return };
    store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
    store.register_worker("worker-b", 1, WorkerState::Running).await.unwrap();
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = ShardId { projection: "totals".into(), shard: 0, count: 1 };
    let stale = store.assign_shard(&id, 0, Some("worker-b")).await.unwrap().unwrap();
    store.assign_shard(&id, stale.epoch, Some("worker-a")).await.unwrap().unwrap();

    // worker-b's batch under its old fence, between its two statements.
    let mut batch = store.begin().await.unwrap();
    let lock = format!(
        "SELECT 1 FROM `{}`.workers_locks WHERE worker_id = 'worker-b' LOCK IN SHARE MODE",
        store.config().schema
    );
    sqlx::query(sqlx::AssertSqlSafe(lock)).fetch_one(&mut *batch).await.unwrap();
    let removal = {
        let store = store.clone();
        tokio::spawn(async move { store.remove_stale_workers(Duration::ZERO).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!removal.is_finished(), "the removal waits for worker-b's batch");
    let moved = store.advance_shard_in(&mut batch, &id, &stale, 0, 5, LEASE).await;
    assert!(!moved.expect("fenced out, not a deadlock victim"), "the shard moved");
    store.rollback(batch).await.unwrap();
    let removed = removal.await.unwrap().expect("the removal is no deadlock victim");
    assert_eq!(removed, ["worker-a", "worker-b"]);
    let row = store.shards().await.unwrap().remove(0);
    assert_eq!((row.owner, row.epoch, row.position), (None, 3, 0), "released once");
}

/// A stale removal of two workers racing an ensure of a projection whose shards they own
/// (the first worker owns its last shard, the second the others): the removal releases the
/// shards of both in one statement, one scan in key order, the order the ensure locks existing
/// rows in (`INSERT IGNORE`), so neither waits for the other while holding a row the other
/// wants. Released worker by worker, the second release scanned again from the first row,
/// which the ensure held while it waited for the last row, held by the first release: a
/// deadlock, and InnoDB rolled one of them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_removal_racing_an_ensure_does_not_deadlock() {
    let Some(store) = common::fresh_store().await else { return };
    const SHARDS: u32 = 300;
    store.ensure_shards("totals", SHARDS, 0).await.unwrap();
    let owners = format!(
        "UPDATE `{}`.projection_shards SET owner = IF(shard = {}, 'worker-a', 'worker-b')",
        store.config().schema,
        SHARDS - 1
    );
    for round in 0..100 {
        for worker in ["worker-a", "worker-b"] {
            store.register_worker(worker, 1, WorkerState::Running).await.unwrap();
        }
        sqlx::query(sqlx::AssertSqlSafe(owners.clone())).execute(store.pool()).await.unwrap();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let removal = {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.remove_stale_workers(Duration::ZERO).await
            })
        };
        let ensure = {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.ensure_shards("totals", SHARDS, 0).await
            })
        };
        let removed = removal.await.unwrap();
        let ensured = ensure.await.unwrap();
        assert_eq!(removed.unwrap(), ["worker-a", "worker-b"], "round {round}: the removal");
        ensured.unwrap_or_else(|e| panic!("round {round}: the ensure: {e}"));
        let owned = store.shards().await.unwrap().iter().filter(|s| s.owner.is_some()).count();
        assert_eq!(owned, 0, "round {round}: every shard released");
    }
}

/// Two orchestrator pools on one event log: the same events table, each pool with workers,
/// shards and recreate-lock tables of its own (two deployments running different projections
/// must not plan each other's shards). Each pool's workers get their lock rows, stay alive,
/// and commit their batches; the lock rows of one pool's workers are not the other's, even
/// under the same worker id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_on_one_log_keep_their_own_workers() {
    let Some(first) = common::fresh_store().await else { return };
    let config = first.config().clone();
    let config = config.workers_table("billing_workers").unwrap();
    let config = config.shards_table("billing_shards").unwrap();
    let config = config.recreate_lock_table("billing_lock").unwrap();
    let second = common::connect(config).await.unwrap();
    second.migrate().await.unwrap();
    let id = ShardId { projection: "totals".into(), shard: 0, count: 1 };
    for (store, worker) in [(&first, "worker-1"), (&second, "worker-2"), (&second, "worker-1")] {
        store.register_worker(worker, 1, WorkerState::Running).await.unwrap();
        assert!(store.heartbeat(worker, WorkerState::Running).await.unwrap(), "{worker} alive");
        store.ensure_shards("totals", 1, 0).await.unwrap();
        let epoch = store.shards().await.unwrap()[0].epoch;
        let fence = store.assign_shard(&id, epoch, Some(worker)).await.unwrap().unwrap();
        let from = store.shards().await.unwrap()[0].position;
        let mut tx = store.begin().await.unwrap();
        let moved = store.advance_shard_in(&mut tx, &id, &fence, from, from + 5, LEASE);
        assert!(moved.await.unwrap(), "{worker}'s batch commits");
        store.commit(tx).await.unwrap();
    }
    // worker-1 of the first pool goes; worker-1 of the second stays, and still commits.
    first.remove_worker("worker-1").await.unwrap();
    assert!(second.heartbeat("worker-1", WorkerState::Running).await.unwrap(), "still alive");
    let row = second.shards().await.unwrap().remove(0);
    assert_eq!((row.owner.as_deref(), row.position), (Some("worker-1"), 10), "untouched");
    let fence =
        pupsourcing_core::coordination::Fence { owner: "worker-1".into(), epoch: row.epoch };
    let mut tx = second.begin().await.unwrap();
    assert!(second.advance_shard_in(&mut tx, &id, &fence, 10, 15, LEASE).await.unwrap());
    second.commit(tx).await.unwrap();
}

/// The longest workers table name (core's `MAX_WORKERS_LEN`) migrates, with its lock rows and
/// their foreign key named after it, and its workers live and commit; a longer name assigned
/// to the field directly is refused by `migrate` and `schema_status` with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_longest_workers_name_has_its_lock_rows() {
    let longest = "w".repeat(pupsourcing_core::TableNames::MAX_WORKERS_LEN);
    let config = StoreConfig::default().workers_table(&longest).unwrap();
    let Some(store) = common::store_with(config).await else { return };
    assert!(store.schema_status().await.unwrap().is_applied());
    store.register_worker("worker-a", 1, WorkerState::Running).await.unwrap();
    assert!(store.heartbeat("worker-a", WorkerState::Running).await.unwrap());
    store.ensure_shards("totals", 1, 0).await.unwrap();
    let id = ShardId { projection: "totals".into(), shard: 0, count: 1 };
    let fence = store.assign_shard(&id, 0, Some("worker-a")).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_shard_in(&mut tx, &id, &fence, 0, 5, LEASE).await.unwrap());
    store.commit(tx).await.unwrap();
    store.remove_worker("worker-a").await.unwrap();
    assert!(!store.heartbeat("worker-a", WorkerState::Running).await.unwrap());

    let mut config = store.config().clone();
    config.tables.workers = pupsourcing_core::Identifier::new(format!("{longest}w")).unwrap();
    let longer = common::connect(config).await.unwrap();
    let refused = |result: pupsourcing_core::Result<()>| {
        matches!(
            result,
            Err(pupsourcing_core::Error::Validation(ValidationError::TableNames { .. }))
        )
    };
    assert!(refused(longer.migrate().await), "migrate refuses it");
    assert!(refused(longer.schema_status().await.map(|_| ())), "and so does the status");
}
