//! Projections on MySQL / MariaDB: the testkit's projection-store suite (the partition hash
//! stored by every append path, batches equal to `Scope::matches` and `Partition::contains`,
//! checkpoints by compare-and-set, also raced, dead letters, reset, pending), and what is
//! particular to MySQL: the stall names the transaction holding the counter, and the
//! migration's projection tables.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use pupsourcing_core::projection::{Partition, ProjectionStore, Scope};
use pupsourcing_core::{EventStore, ExpectedVersion, Limits, Position, StoreConfig};
use pupsourcing_mysql::{MySqlEventStore, sqlx};
use pupsourcing_projection::status;
use pupsourcing_testkit::{event, new_stream};
use sqlx::MySql;
use sqlx::pool::PoolConnection;

/// The stored partition hash of every event, by position, read with raw SQL.
async fn stored_hashes(store: MySqlEventStore) -> HashMap<Position, i64> {
    let sql =
        format!("SELECT global_position, partition_hash FROM `{}`.events", store.config().schema);
    let rows: Vec<(i64, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(store.pool()).await.unwrap();
    rows.into_iter().collect()
}

/// A fresh store allowing the largest queries.
async fn ceiling_store() -> Option<MySqlEventStore> {
    common::store_with(StoreConfig { limits: Limits::CEILING, ..StoreConfig::default() }).await
}

/// A pooled connection outside any transaction.
async fn plain_connection(store: MySqlEventStore) -> PoolConnection<MySql> {
    store.pool().acquire().await.unwrap()
}

pupsourcing_testkit::projection_store_conformance!(
    common::fresh_store,
    ceiling_store,
    stored_hashes,
    plain_connection
);

/// An append in an open transaction holds the counter: `stall` names that transaction's
/// connection (the id `KILL` takes), its age and user, with the head as the position; a
/// batch read stops at the head; `status` reports the same stall. Once it commits, nothing
/// stalls, and the waiting append goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stall_names_the_open_appender() {
    let Some(store) = common::fresh_store().await else { return };
    store.append(&new_stream(), ExpectedVersion::Any, &[event("Before")]).await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None, "nothing in flight");
    store.checkpoint("held", Partition::all()).await.unwrap();
    let mut open = store.begin().await.unwrap();
    let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()").fetch_one(&mut *open).await.unwrap();
    store.append_in(&mut open, &new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap();
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move {
            store.append(&new_stream(), ExpectedVersion::Any, &[event("B")]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stall = store.stall().await.unwrap().expect("the open append stalls the head");
    assert_eq!(stall.position, 1, "the head: the open append holds position 2");
    assert_eq!(stall.session, Some(id as i64));
    let age = stall.transaction_age.expect("the age is known");
    assert!(age >= Duration::from_millis(250) && age < Duration::from_secs(60), "{age:?}");
    assert!(stall.application_name.as_deref().is_some_and(|u| u.starts_with("root@")), "{stall:?}");
    let batch = store.read_batch(&Scope::all(), Partition::all(), 0, 10).await.unwrap();
    assert_eq!((batch.head, batch.events.len()), (1, 1));
    let statuses = status(&store, &[]).await.unwrap();
    let reported = statuses[0].stall.as_ref().expect("status shows the stall");
    assert_eq!((reported.position, reported.session), (stall.position, stall.session));
    assert!(!waiting.is_finished(), "the later append waits for the counter");
    store.commit(open).await.unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(store.stall().await.unwrap(), None);
    assert_eq!(store.head().await.unwrap(), 3);
}

/// The migration creates the projection tables under their configured names, in the
/// configured database.
#[test]
fn the_migration_names_the_configured_projection_tables() {
    let config = StoreConfig::default()
        .schema("shop")
        .unwrap()
        .checkpoints_table("cp")
        .unwrap()
        .dead_letters_table("dl")
        .unwrap();
    let sql = pupsourcing_mysql::migration_sql(&config);
    for table in ["cp", "dl"] {
        let create = format!("CREATE TABLE IF NOT EXISTS `shop`.`{table}`");
        assert!(sql.contains(&create), "{create}");
    }
}

/// Reading a checkpoint never waits for the batch in flight on it (whose advance holds the
/// row's lock until it commits): it returns the committed position.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reading_a_checkpoint_does_not_wait_for_its_batch() {
    let Some(store) = common::fresh_store().await else { return };
    store.checkpoint("p", Partition::all()).await.unwrap();
    let mut batch = store.begin().await.unwrap();
    assert!(store.advance_checkpoint_in(&mut batch, "p", Partition::all(), 0, 7).await.unwrap());
    let read =
        tokio::time::timeout(Duration::from_secs(2), store.checkpoint("p", Partition::all()));
    assert_eq!(read.await.expect("no wait").unwrap().position, 0);
    store.commit(batch).await.unwrap();
    assert_eq!(store.checkpoint("p", Partition::all()).await.unwrap().position, 7);
}
