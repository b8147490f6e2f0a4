//! Transactions, time limits, migrations and the store's connections on SQLite: an error
//! always means what it says, and the backends agree with PostgreSQL's (tests/lifecycle.rs
//! there).

mod common;

use std::time::Duration;

use common::{database_url, file_store};
use pupsourcing_core::{ConnectOptions, Error, EventStore, ExpectedVersion, StoreConfig};
use pupsourcing_sqlite::{SqliteEventStore, sqlx};
use pupsourcing_testkit::lifecycle::{APPEND_LIMITS, timed_out_appends_wrote_nothing};
use pupsourcing_testkit::{event, new_stream};

/// Under every limit from 1 µs to 3 ms, a `Timeout` means nothing was written (the timer
/// used to fire while COMMIT ran on SQLite's worker thread, which committed anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_timed_out_append_wrote_nothing() {
    let unlimited = file_store(StoreConfig::default()).await;
    let (mut appended, mut timed_out) = (0, 0);
    for limit in APPEND_LIMITS {
        let config = StoreConfig::default().append_timeout(limit);
        let (pool, writer) = (unlimited.pool().clone(), unlimited.write_pool().clone());
        let limited = SqliteEventStore::with_write_pool(pool, writer, config);
        let counts = timed_out_appends_wrote_nothing(limited, unlimited.clone(), 40).await;
        (appended, timed_out) = (appended + counts.appended, timed_out + counts.timed_out);
    }
    assert!(appended > 0 && timed_out > 0, "{appended} appended, {timed_out} timed out");
}

/// SQLite keeps a transaction open after a failed statement (PostgreSQL aborts it), so the
/// writes before it commit, and `commit` says so truly.
#[tokio::test]
async fn a_failed_statement_does_not_end_the_transaction() {
    let store = file_store(StoreConfig::default()).await;
    let stream = new_stream();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    assert!(sqlx::query("SELECT * FROM no_such_table").execute(&mut *tx).await.is_err());
    store.commit(tx).await.expect("the transaction is still open");
    assert_eq!(store.stream_version(&stream).await.unwrap(), 1);
}

/// A transaction SQLite has already ended cannot be committed: `commit` fails, and nothing of
/// it is stored (as on PostgreSQL).
#[tokio::test]
async fn commit_of_an_ended_transaction_is_an_error() {
    let store = file_store(StoreConfig::default()).await;
    let stream = new_stream();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    assert!(store.commit(tx).await.is_err());
    assert_eq!(store.stream_version(&stream).await.unwrap(), 0);
    store.append(&stream, ExpectedVersion::NoStream, &[event("B")]).await.unwrap();
}

/// A failed migration is rolled back: the write pool's one connection serves the next store.
#[tokio::test]
async fn a_failed_migration_leaves_the_pool_usable() {
    let (_, url) = database_url();
    let broken = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    // An events table of another shape: CREATE TABLE IF NOT EXISTS keeps it, and the
    // migration's indexes on it fail.
    sqlx::raw_sql("CREATE TABLE events (id INTEGER)").execute(broken.write_pool()).await.unwrap();
    let err = broken.migrate().await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");

    let config = StoreConfig::default()
        .events_table("other_events")
        .and_then(|c| c.aggregate_heads_table("other_heads"))
        .and_then(|c| c.commands_table("other_commands"))
        .unwrap();
    let (pool, writer) = (broken.pool().clone(), broken.write_pool().clone());
    let store = SqliteEventStore::with_write_pool(pool, writer, config);
    store.migrate().await.unwrap();
    store.append(&new_stream(), ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
}

/// `connect_with` sizes the read pool and bounds the wait for a connection; `close` closes both
/// pools.
#[tokio::test]
async fn pool_options_and_close() {
    let (_, url) = database_url();
    let options =
        ConnectOptions::new().max_connections(2).acquire_timeout(Duration::from_millis(200));
    let store =
        SqliteEventStore::connect_with(&url, StoreConfig::default(), options).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.pool().options().get_max_connections(), 2);
    // The one write connection is held: the next writer gives up after the acquire timeout.
    let held = store.begin().await.unwrap();
    let err = store.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    store.rollback(held).await.unwrap();

    store.close().await;
    assert!(store.pool().is_closed() && store.write_pool().is_closed());
    let err = store.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap_err();
    assert!(matches!(err, Error::PoolClosed), "{err:?}");
}

/// `schema_status` reports no table before `migrate`, every one after, with the configured
/// names.
#[tokio::test]
async fn schema_status_tells_a_migrated_database_from_an_empty_one() {
    let (_, url) = database_url();
    let config = StoreConfig::default().events_table("ledger").unwrap();
    let store = SqliteEventStore::connect(&url, config).await.unwrap();
    let before = store.schema_status().await.unwrap();
    assert!(before.is_empty() && !before.is_applied(), "{before:?}");
    store.migrate().await.unwrap();
    let after = store.schema_status().await.unwrap();
    assert!(after.is_applied(), "{after:?}");
    let names: Vec<_> = after.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[0], "ledger");
    assert!(names.contains(&"ledger_checkpoints") && names.contains(&"ledger_shards"));
    // Another events table in the same file is not migrated by the first.
    let other = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    assert!(other.schema_status().await.unwrap().is_empty());
}
