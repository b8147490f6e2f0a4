//! Transactions, time limits, migrations and the store's connections on PostgreSQL: an error
//! always means what it says, and nothing the store owns outlives it.

mod common;

use std::time::{Duration, Instant};

use pupsourcing_core::{
    ConnectOptions, Error, EventStore, ExpectedVersion, StoreConfig, VersionRange,
};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_testkit::lifecycle::{APPEND_LIMITS, timed_out_appends_wrote_nothing};
use pupsourcing_testkit::{event, new_stream};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPoolOptions;

async fn execute(store: &PgEventStore, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
}

/// Under every limit from 1 µs to 3 ms, a `Timeout` means nothing was written (the timer
/// used to fire while COMMIT was in flight, and the events committed anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_timed_out_append_wrote_nothing() {
    let Some(unlimited) = common::fresh_store().await else { return };
    let (mut appended, mut timed_out) = (0, 0);
    for limit in APPEND_LIMITS {
        let config = unlimited.config().clone().append_timeout(limit);
        let limited = PgEventStore::new(unlimited.pool().clone(), config);
        let counts = timed_out_appends_wrote_nothing(limited, unlimited.clone(), 40).await;
        (appended, timed_out) = (appended + counts.appended, timed_out + counts.timed_out);
    }
    assert!(appended > 0 && timed_out > 0, "{appended} appended, {timed_out} timed out");
}

/// A COMMIT slower than the limit (a deferred trigger sleeping 1 s at COMMIT, a 500 ms limit)
/// is awaited: the append succeeds, late, rather than timing out after it was written.
#[tokio::test]
async fn a_commit_slower_than_the_limit_is_awaited() {
    let Some(store) = common::fresh_store().await else { return };
    let schema = store.config().schema.to_string();
    execute(
        &store,
        format!(
            "CREATE FUNCTION {schema}.slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON {schema}.events \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}.slow_commit();"
        ),
    )
    .await;
    let config = store.config().clone().append_timeout(Duration::from_millis(500));
    let limited = PgEventStore::new(store.pool().clone(), config);
    let (stream, events) = (new_stream(), [event("Slow")]);
    let started = Instant::now();
    let result = limited.append(&stream, ExpectedVersion::NoStream, &events).await;
    let written = store.append(&stream, ExpectedVersion::Any, &events).await.unwrap().replayed;
    assert!(written, "the append was committed");
    let result = result.expect("a committed append reports success, not a timeout");
    assert_eq!(result.versions, [1]);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

/// A failed statement aborts the caller's transaction; the server answers the COMMIT with a
/// ROLLBACK, and `commit` reports it instead of `Ok(())`.
#[tokio::test]
async fn commit_of_an_aborted_transaction_is_an_error() {
    let Some(store) = common::fresh_store().await else { return };
    let stream = new_stream();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    let failed = sqlx::query("SELECT * FROM no_such_table").execute(&mut *tx).await;
    assert!(failed.is_err());
    let err = store.commit(tx).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert!(err.to_string().contains("not committed"), "{err}");
    assert_eq!(store.stream_version(&stream).await.unwrap(), 0);
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 0);
    // The connection went back to the pool usable.
    store.append(&stream, ExpectedVersion::NoStream, &[event("B")]).await.unwrap();
}

/// A transaction the caller ended with a statement of its own cannot be committed either.
#[tokio::test]
async fn commit_of_an_ended_transaction_is_an_error() {
    let Some(store) = common::fresh_store().await else { return };
    let stream = new_stream();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    assert!(store.commit(tx).await.is_err());
    assert_eq!(store.stream_version(&stream).await.unwrap(), 0);
}

/// A failed migration rolls back before its connection returns to the pool: a store sharing
/// the pool (of one connection) works afterwards.
#[tokio::test]
async fn a_failed_migration_leaves_the_pool_usable() {
    if let Err(err) = common::probe().await {
        return pupsourcing_testkit::unreachable("PostgreSQL", err).unwrap_or(());
    }
    let pool = PgPoolOptions::new().max_connections(1).connect(&common::url()).await.unwrap();
    let broken = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let schema = broken.schema.to_string();
    // An events table of another shape: CREATE TABLE IF NOT EXISTS keeps it, and the
    // migration's indexes on it fail.
    let conflict = format!("CREATE SCHEMA {schema}; CREATE TABLE {schema}.events (id int);");
    sqlx::raw_sql(AssertSqlSafe(conflict)).execute(&pool).await.unwrap();
    let err = PgEventStore::new(pool.clone(), broken).migrate().await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");

    let config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let store = PgEventStore::new(pool, config);
    store.migrate().await.expect("the pool's connection is not left in an aborted transaction");
    store.append(&new_stream(), ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
}

/// A refused port fails at once, naming the host and port, with the I/O error as source
/// (it used to wait 30 s and report a bare `Timeout`).
#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast_with_the_cause() {
    let started = Instant::now();
    let url = "postgres://postgres@127.0.0.1:1/test";
    let err = PgEventStore::connect(url, StoreConfig::default()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    let mut source = std::error::Error::source(&err);
    let mut io_kind = None;
    while let Some(cause) = source {
        io_kind = io_kind.or(cause.downcast_ref::<std::io::Error>().map(|io| io.kind()));
        source = cause.source();
    }
    assert_eq!(io_kind, Some(std::io::ErrorKind::ConnectionRefused), "{err:?}");
}

/// `url` with an `application_name` that identifies one test's connections.
fn named_url(name: &str) -> String {
    let url = common::url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

async fn sessions_named(name: &str) -> i64 {
    let pool = PgPoolOptions::new().max_connections(1).connect(&common::url()).await.unwrap();
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";
    let count = sqlx::query_scalar(sql).bind(name).fetch_one(&pool).await.unwrap();
    pool.close().await;
    count
}

/// `close()` closes every connection of the store, the group-commit writers' and the kept
/// ones included, and the store never holds more than its pool's size plus six (two writers,
/// four kept connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_leaves_no_connection_behind() {
    if let Err(err) = common::probe().await {
        return pupsourcing_testkit::unreachable("PostgreSQL", err).unwrap_or(());
    }
    let name = format!("pup_close_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let options = ConnectOptions::new().max_connections(2);
    let store = PgEventStore::connect_with(&named_url(&name), config, options).await.unwrap();
    store.migrate().await.unwrap();
    // Concurrent single-event appends: group commit opens its writers.
    let appends = (0..64).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store.append(&new_stream(), ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
        })
    });
    for append in appends.collect::<Vec<_>>() {
        append.await.unwrap();
    }
    let open = sessions_named(&name).await;
    assert!((1..=8).contains(&open), "{open} sessions: up to 2 pooled, 2 writers and 4 kept");

    store.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = sessions_named(&name).await;
    while left > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = sessions_named(&name).await;
    }
    assert_eq!(left, 0, "sessions of the store left after close()");
    let err = store.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap_err();
    assert!(matches!(err, Error::PoolClosed), "{err:?}");
}

/// The acquire timeout bounds the wait for a free connection.
#[tokio::test]
async fn the_acquire_timeout_bounds_the_wait_for_a_connection() {
    if let Err(err) = common::probe().await {
        return pupsourcing_testkit::unreachable("PostgreSQL", err).unwrap_or(());
    }
    let config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let options =
        ConnectOptions::new().max_connections(1).acquire_timeout(Duration::from_millis(300));
    let store = PgEventStore::connect_with(&common::url(), config, options).await.unwrap();
    store.migrate().await.unwrap();
    let held = store.begin().await.unwrap();
    let started = Instant::now();
    let err = store.stream_version(&new_stream()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    store.rollback(held).await.unwrap();
    store.close().await;
}

/// `schema_status` reports no table in a schema never migrated, every one after `migrate`,
/// and looks only in the configured schema.
#[tokio::test]
async fn schema_status_tells_a_migrated_schema_from_an_empty_one() {
    if let Err(err) = common::probe().await {
        return pupsourcing_testkit::unreachable("PostgreSQL", err).unwrap_or(());
    }
    let schema = common::unique_schema();
    let config = StoreConfig::default().schema(&schema).unwrap().events_table("ledger").unwrap();
    let options = ConnectOptions::new().max_connections(2);
    let store = PgEventStore::connect_with(&common::url(), config, options).await.unwrap();
    let before = store.schema_status().await.unwrap();
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(before.location, schema);
    store.migrate().await.unwrap();
    let after = store.schema_status().await.unwrap();
    assert!(after.is_applied(), "{after:?}");
    assert!(after.tables.iter().any(|t| t.name.as_str() == "ledger_dead_letters"));
    let elsewhere = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let options = ConnectOptions::new().max_connections(1);
    let other = PgEventStore::connect_with(&common::url(), elsewhere, options).await.unwrap();
    assert!(other.schema_status().await.unwrap().is_empty());
    store.close().await;
    other.close().await;
}

/// `close()` waits for the appends in flight on the store's own connections (a group on a
/// writer connection, a lone append on a kept one), as it waits for the pool's: once it
/// returns, nothing more of the store is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_waits_for_the_appends_in_flight() {
    let Some(store) = common::fresh_store().await else { return };
    // A store of its own holds the lock, so that closing `store` does not wait for it.
    let holder = common::store_with(store.config().clone()).await.unwrap();
    let blocked = new_stream();
    let mut tx = holder.begin().await.unwrap();
    holder.append_in(&mut tx, &blocked, ExpectedVersion::Any, &[event("Held")]).await.unwrap();
    // The first waits alone on the direct path (a kept connection), the second in a group
    // (a writer connection), both well within the writers' 200 ms lock timeout.
    let mut blockers = Vec::new();
    for _ in 0..common::BLOCKERS {
        let (store, blocked) = (store.clone(), blocked.clone());
        blockers.push(tokio::spawn(async move {
            store.append(&blocked, ExpectedVersion::Any, &[event("Blocked")]).await
        }));
        tokio::time::sleep(common::SETTLE).await;
    }
    let blocked_count = |store: PgEventStore, stream| async move {
        let events = store.read_stream(&stream, VersionRange::all()).await.unwrap();
        events.iter().filter(|e| e.event_type == "Blocked").count()
    };
    let closing = {
        let (store, holder, blocked) = (store.clone(), holder.clone(), blocked.clone());
        tokio::spawn(async move {
            store.close().await;
            blocked_count(holder, blocked).await
        })
    };
    tokio::time::sleep(common::SETTLE).await;
    holder.commit(tx).await.unwrap();
    for blocker in blockers {
        blocker.await.unwrap().unwrap();
    }
    let at_close = closing.await.unwrap();
    let stored = blocked_count(holder.clone(), blocked).await;
    assert_eq!(
        at_close,
        stored,
        "{} appends were stored after close() returned",
        stored - at_close
    );
    holder.close().await;
}

/// A store whose pool its owner closed (`PgEventStore::new` on a pool of the caller's) fails
/// every later call with `PoolClosed`, as it does after its own `close()`: the connections it
/// keeps outside the pool do not keep serving reads and appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_whose_pool_was_closed_serves_no_call() {
    use pupsourcing_core::dcb::{DcbStore, Query, QueryItem, ReadOptions};
    if let Err(err) = common::probe().await {
        return pupsourcing_testkit::unreachable("PostgreSQL", err).unwrap_or(());
    }
    let name = format!("pup_pool_closed_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let store =
        PgEventStore::connect_with(&named_url(&name), config, ConnectOptions::new()).await.unwrap();
    store.migrate().await.unwrap();
    let query = Query::from_items([QueryItem::tags(["closed:1"])]);
    let tagged = || pupsourcing_core::NewEvent::new("A", "{}").with_tags(["closed:1"]);
    // Calls that run on kept connections, so that the store keeps some.
    store.append_if(&[tagged(), tagged()], None).await.unwrap();
    store.read(&query, ReadOptions::new()).await.unwrap();
    store.pool().close().await;
    // A single append first: it alone must close the kept connections too.
    let single = store.append_if(&[tagged()], None).await;
    assert!(matches!(single, Err(Error::PoolClosed)), "single: {single:?}");
    assert_eq!(sessions_left(&name).await, 0, "sessions left open after a single append");
    let read = store.read(&query, ReadOptions::new()).await;
    assert!(matches!(read, Err(Error::PoolClosed)), "read: {read:?}");
    let batch = store.append_if(&[tagged(), tagged()], None).await;
    assert!(matches!(batch, Err(Error::PoolClosed)), "batch: {batch:?}");
    let single = store.append_if(&[tagged()], None).await;
    assert!(matches!(single, Err(Error::PoolClosed)), "single: {single:?}");
}

/// [`sessions_named`] once they are gone, or after five seconds (the server drops a closed
/// session from `pg_stat_activity` shortly after its socket closes).
async fn sessions_left(name: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = sessions_named(name).await;
    while left > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = sessions_named(name).await;
    }
    left
}
