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
