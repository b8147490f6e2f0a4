//! Projections on SQLite: the testkit's projection-store suite (the partition hash stored by
//! every append path, batches equal to `Scope::matches` and `Partition::contains`, checkpoints
//! by compare-and-set, also raced, dead letters, reset, pending), and what is particular to
//! SQLite: the migration of an older events table, and a head that never stalls.

mod common;

use std::collections::HashMap;

use common::{database_url, file_store};
use pupsourcing_core::dcb::DcbStore;
use pupsourcing_core::projection::{Partition, ProjectionStore, Scope, partition_hash};
use pupsourcing_core::{EventStore, ExpectedVersion, Limits, Position, StoreConfig, StreamId};
use pupsourcing_sqlite::{SqliteEventStore, sqlx};
use pupsourcing_testkit::event;
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use uuid::Uuid;

/// The stored partition hash of every event, by position, read with raw SQL.
async fn stored_hashes(store: SqliteEventStore) -> HashMap<Position, i64> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT global_position, partition_hash FROM events")
            .fetch_all(store.pool())
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// A fresh store allowing the largest queries.
async fn ceiling_store() -> Option<SqliteEventStore> {
    Some(
        common::file_store(StoreConfig { limits: Limits::CEILING, ..StoreConfig::default() }).await,
    )
}

/// Two stores on one new database file: each store has a single writer connection, so racers
/// sharing one would only queue for it.
async fn racers() -> Option<(SqliteEventStore, SqliteEventStore)> {
    let (_, url) = database_url();
    let first = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    first.migrate().await.unwrap();
    let second = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    Some((first, second))
}

/// The writer connection, outside any transaction.
async fn plain_connection(store: SqliteEventStore) -> PoolConnection<Sqlite> {
    store.write_pool().acquire().await.unwrap()
}

pupsourcing_testkit::projection_store_conformance!(
    common::fresh_store,
    ceiling_store,
    stored_hashes,
    plain_connection,
    racers = racers
);

/// An events table from before the partition hash: migrate adds the column (once), the events
/// it held hash to 0, and later appends store their real hash.
#[tokio::test]
async fn migrate_adds_the_partition_hash_to_an_older_events_table() {
    let (_, url) = database_url();
    let store = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    let old = StreamId::new("Order", Uuid::now_v7());
    store.append(&old, ExpectedVersion::NoStream, &[event("Placed")]).await.unwrap();
    sqlx::query("ALTER TABLE events DROP COLUMN partition_hash")
        .execute(store.write_pool())
        .await
        .unwrap();

    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let new = [event("Paid")];
    store.append(&old, ExpectedVersion::Exact(1), &new).await.unwrap();
    let stored = stored_hashes(store.clone()).await;
    assert_eq!(stored[&1], 0, "events stored before the column hash to 0");
    assert_eq!(stored[&2], i64::from(partition_hash(Some(&old), &new[0])));
    let batch = store.read_batch(&Scope::all(), Partition::new(0, 2).unwrap(), 0, 10).await;
    assert!(batch.unwrap().events.iter().any(|e| e.position == 1), "old events are in partition 0");
}

/// SQLite commits in position order: nothing ever stalls the head.
#[tokio::test]
async fn stall_is_none() {
    let store = file_store(StoreConfig::default()).await;
    let mut tx = store.begin().await.unwrap();
    store.append_if_in(&mut tx, &[event("A")], None).await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None);
    store.commit(tx).await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None);
}
