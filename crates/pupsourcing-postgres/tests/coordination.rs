//! The coordination conformance suite (the orchestrator's store) on PostgreSQL, plus the
//! schema's coordination tables in the migration output.

mod common;

use pupsourcing_core::StoreConfig;

pupsourcing_testkit::coordination_conformance!(common::fresh_store);

/// Not in the macro: it needs a reassignment to run while the old owner's transaction is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_out_owner_cannot_commit() {
    if let Some(store) = common::fresh_store().await {
        pupsourcing_testkit::coordination::a_fenced_out_owner_cannot_commit(store).await;
    }
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
