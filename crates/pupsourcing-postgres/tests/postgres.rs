//! PostgreSQL-specific behaviour beyond the conformance suite.

mod common;

use pupsourcing_core::{Error, EventStore, ExpectedVersion, StoreConfig, VersionRange};
use pupsourcing_testkit::{event, new_stream};

#[tokio::test]
async fn closed_pool_is_a_typed_error() {
    let Some(store) = common::fresh_store().await else { return };
    store.pool().close().await;
    let err = store.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap_err();
    assert!(matches!(err, Error::PoolClosed), "{err:?}");
    assert!(matches!(store.read_all(1, 10).await, Err(Error::PoolClosed)));
}

#[tokio::test]
async fn custom_table_names_and_repeated_migrations() {
    let config = StoreConfig::default()
        .schema(&common::unique_schema())
        .and_then(|c| c.events_table("ledger"))
        .and_then(|c| c.aggregate_heads_table("ledger_heads"))
        .unwrap();
    let Some(store) = common::store_with(config.clone()).await else { return };
    store.migrate().await.expect("migrating twice is harmless");
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    let table = format!("{}.ledger", config.schema);
    let sql = format!("SELECT count(*) FROM {table}");
    let count: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn two_stores_in_one_database_do_not_mix() {
    let Some(a) = common::fresh_store().await else { return };
    let Some(b) = common::fresh_store().await else { return };
    a.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap();
    assert_eq!(b.read_all(1, 10).await.unwrap().len(), 0);
    assert_eq!(a.read_all(1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_conflict_leaves_the_callers_transaction_usable() {
    let Some(store) = common::fresh_store().await else { return };
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::Any, &[event("A")]).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let err = store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("B")]).await;
    assert!(matches!(err, Err(Error::Concurrency { actual: 1, .. })));
    // The function reports conflicts without raising, so the transaction goes on.
    store.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &[event("B")]).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(store.read_stream(&stream, VersionRange::all()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn no_session_lock_outlives_an_append() {
    let Some(store) = common::fresh_store().await else { return };
    for n in [1, 3, 1, 5] {
        let batch: Vec<_> = (0..n).map(|_| event("E")).collect();
        store.append(&new_stream(), ExpectedVersion::Any, &batch).await.unwrap();
    }
    // Session-level advisory locks (objsubid 2 = the allocation lock) must all be released.
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(held, 0);
}
