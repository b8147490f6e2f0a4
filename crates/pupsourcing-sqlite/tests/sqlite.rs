//! Behaviour specific to the SQLite backend: connecting, migrations, table names, errors.

mod common;

use common::{database_url, file_store};
use pupsourcing_core::{
    Error, EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId, VersionRange,
};
use pupsourcing_sqlite::{SqliteEventStore, migration_sql, sqlx};
use pupsourcing_testkit::{event, new_stream};
use sqlx::Connection;

async fn table_names(store: &SqliteEventStore) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn closed_pool_is_reported() {
    let store = file_store(StoreConfig::default()).await;
    store.close().await;
    assert!(store.pool().is_closed() && store.write_pool().is_closed());
    let stream = new_stream();
    assert!(matches!(
        store.append(&stream, ExpectedVersion::Any, &[event("A")]).await,
        Err(Error::PoolClosed)
    ));
    assert!(matches!(store.head().await, Err(Error::PoolClosed)));
    assert!(matches!(store.read_all(1, 10).await, Err(Error::PoolClosed)));
    assert!(matches!(store.stream_version(&stream).await, Err(Error::PoolClosed)));
    assert!(matches!(store.begin().await, Err(Error::PoolClosed)));
    assert!(matches!(store.migrate().await, Err(Error::PoolClosed)));

    // A store on one pool, closed from outside.
    let store = file_store(StoreConfig::default()).await;
    let shared = SqliteEventStore::new(store.pool().clone(), StoreConfig::default());
    assert_eq!(shared.head().await.unwrap(), 0);
    store.pool().close().await;
    assert!(matches!(
        shared.append(&stream, ExpectedVersion::Any, &[event("A")]).await,
        Err(Error::PoolClosed)
    ));
    assert!(matches!(
        shared.read_stream(&stream, VersionRange::all()).await,
        Err(Error::PoolClosed)
    ));
}

/// Several stores on one file, as several processes would have: their writers meet on SQLite's
/// write lock itself (`BEGIN IMMEDIATE` and the busy timeout), not in a pool's queue. Every
/// append gets in, versions stay dense, and a tailing reader sees every event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_stores_on_one_file() {
    const STORES: usize = 4;
    const APPENDS: usize = 40;
    let (_, url) = database_url();
    let mut stores = Vec::new();
    for _ in 0..STORES {
        let store = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
        store.migrate().await.unwrap();
        stores.push(store);
    }
    let stream = new_stream();
    let writers: Vec<_> = stores
        .iter()
        .flat_map(|store| [store.clone(), store.clone()])
        .map(|store| {
            let stream = stream.clone();
            tokio::spawn(async move {
                for _ in 0..APPENDS {
                    let mut tx = store.begin().await.unwrap();
                    store
                        .append_in(
                            &mut tx,
                            &stream,
                            ExpectedVersion::Any,
                            &[event("A"), event("B")],
                        )
                        .await
                        .unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    store.commit(tx).await.unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let store = stores[0].clone();
        let total = (STORES * 2 * APPENDS * 2) as i64;
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while (seen.len() as i64) < total {
                let from = seen.last().map_or(1, |p| p + 1);
                let page = store.read_all(from, 100).await.unwrap();
                if page.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                seen.extend(page.iter().map(|e| e.position));
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = reader.await.unwrap();
    let total = (STORES * 2 * APPENDS * 2) as i64;
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    let read = stores[1].read_stream(&stream, VersionRange::all()).await.unwrap();
    let versions: Vec<_> = read.iter().filter_map(|e| e.aggregate_version()).collect();
    assert_eq!(versions, (1..=total).collect::<Vec<_>>());
}

#[tokio::test]
async fn in_memory_round_trip() {
    let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    let stream = new_stream();
    let meta = serde_json::json!({ "user": "ada" });
    let first = event("Opened").with_tags(["a:1"]).with_metadata(meta.clone());
    let r = store
        .append(&stream, ExpectedVersion::NoStream, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!((r.positions.clone(), r.versions), (vec![1], vec![1]));
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &[event("Closed")]).await.unwrap();
    store.commit(tx).await.unwrap();

    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].event_id, first.event_id);
    assert_eq!(read[0].tags, ["a:1"]);
    assert_eq!(read[0].metadata, Some(meta));
    assert_eq!(read[1].aggregate_version(), Some(2));
    assert_eq!(store.head().await.unwrap(), 2);
    assert_eq!(store.read_all(2, 10).await.unwrap().len(), 1);

    // The pool's single connection keeps the database alive: a second store is another database.
    let other = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await.unwrap();
    other.migrate().await.unwrap();
    assert_eq!(other.head().await.unwrap(), 0);
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let (_, url) = database_url();
    let store = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    let r = store.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap();
    store.migrate().await.unwrap();

    // Several processes starting at once: each migrates the same file.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let store = SqliteEventStore::connect(&url, StoreConfig::default()).await?;
                store.migrate().await
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap().unwrap();
    }
    assert_eq!(store.head().await.unwrap(), r.last_position(), "data survives migrations");
    assert_eq!(
        table_names(&store).await,
        [
            "aggregate_heads",
            "commands",
            "events",
            "events_tags",
            "projection_checkpoints",
            "projection_dead_letters",
            "projection_shards",
            "recreate_lock",
            "workers"
        ]
    );

    let journal: String =
        sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn migration_sql_names_the_configured_tables() {
    let config = StoreConfig::default()
        .schema("ignored_by_sqlite")
        .unwrap()
        .events_table("billing_events")
        .unwrap()
        .aggregate_heads_table("billing_heads")
        .unwrap();
    let sql = migration_sql(&config);
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "billing_events""#), "{sql}");
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "billing_heads""#), "{sql}");
    assert!(sql.contains(r#"ON "billing_events""#), "{sql}");
    assert!(!sql.contains("ignored_by_sqlite") && !sql.contains('{'), "{sql}");
    assert_eq!(SqliteEventStore::migration_sql(&config), sql);
    let default = migration_sql(&StoreConfig::default());
    assert!(default.contains(r#""events""#) && default.contains(r#""aggregate_heads""#));
}

#[tokio::test]
async fn custom_table_names_work() {
    // SQL keywords on purpose: the names are quoted wherever they are spliced in.
    let config = StoreConfig::default()
        .events_table("order")
        .unwrap()
        .aggregate_heads_table("group")
        .unwrap();
    let store = file_store(config.clone()).await;
    assert_eq!(store.config(), &config);
    // The commands table is named after the events table, as it was not set.
    assert_eq!(
        table_names(&store).await,
        [
            "group",
            "order",
            "order_checkpoints",
            "order_commands",
            "order_dead_letters",
            "order_recreate_lock",
            "order_shards",
            "order_tags",
            "order_workers"
        ]
    );

    let stream = new_stream();
    let r =
        store.append(&stream, ExpectedVersion::NoStream, &[event("A"), event("B")]).await.unwrap();
    assert_eq!(r.versions, [1, 2]);
    assert!(store.append(&stream, ExpectedVersion::NoStream, &[event("C")]).await.is_err());
    assert_eq!(store.stream_version(&stream).await.unwrap(), 2);
    assert_eq!(store.read_stream(&stream, VersionRange::all()).await.unwrap().len(), 2);
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 2);
    assert_eq!(store.head().await.unwrap(), r.last_position());
    let stored: i64 = sqlx::query_scalar(r#"SELECT count(*) FROM "order""#)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn full_batch_goes_in_one_block() {
    let store = file_store(StoreConfig::default()).await;
    store.append(&new_stream(), ExpectedVersion::Any, &[event("Before")]).await.unwrap();
    let batch: Vec<_> = (0..1000)
        .map(|i| {
            event("Bulk")
                .with_tags([format!("n:{i}"), "bulk".to_string()])
                .with_metadata(serde_json::json!({ "i": i }))
                .with_bounded_context("ctx")
        })
        .collect();
    let stream = new_stream();
    let r = store.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
    assert_eq!(r.positions, (2..=1001).collect::<Vec<_>>());
    assert_eq!(r.versions, (1..=1000).collect::<Vec<_>>());
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    let ids: Vec<_> = read.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, batch.iter().map(|e| e.event_id).collect::<Vec<_>>());
    assert_eq!(read[999].tags, ["n:999", "bulk"]);
    let again = store.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.positions, r.positions);
}

#[tokio::test]
async fn metadata_values_round_trip_exactly() {
    let store = file_store(StoreConfig::default()).await;
    let stream = new_stream();
    let values = [
        serde_json::Value::Null,
        serde_json::json!("text"),
        serde_json::json!(12345678901234567u64),
        serde_json::json!(1.5),
        serde_json::json!([1, "two", { "three": null }]),
    ];
    let batch: Vec<_> = values.iter().map(|v| event("M").with_metadata(v.clone())).collect();
    store.append(&stream, ExpectedVersion::Any, &batch).await.unwrap();
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    let back: Vec<_> = read.into_iter().map(|e| e.metadata).collect();
    assert_eq!(back, values.map(Some));
}

#[tokio::test]
async fn append_in_outside_a_transaction_commits_on_its_own() {
    let store = file_store(StoreConfig::default()).await;
    let stream = new_stream();
    let mut conn = store.pool().acquire().await.unwrap();
    store.append_in(&mut conn, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    assert!(!conn.is_in_transaction());
    drop(conn);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 1);

    // A plain deferred transaction works too.
    let mut tx = store.pool().begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &[event("B")]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.stream_version(&stream).await.unwrap(), 2);
}

/// A write that fails after the events went in (here: the head update, refused by a trigger)
/// leaves nothing of the append behind, in the store's own transaction and in a caller's.
#[tokio::test]
async fn a_failed_write_leaves_nothing_in_the_callers_transaction() {
    let store = file_store(StoreConfig::default()).await;
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON aggregate_heads WHEN NEW.aggregate_type = 'Poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let poison = pupsourcing_core::StreamId::new("Poison", uuid::Uuid::now_v7());
    let fine = new_stream();

    let err = store.append(&poison, ExpectedVersion::Any, &[event("X")]).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(store.head().await.unwrap(), 0);

    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &fine, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    let err = store.append_in(&mut tx, &poison, ExpectedVersion::Any, &[event("X")]).await;
    assert!(matches!(err, Err(Error::Database(_))), "{err:?}");
    let conflict = store.append_in(&mut tx, &fine, ExpectedVersion::NoStream, &[event("B")]).await;
    assert!(matches!(conflict, Err(Error::Concurrency { actual: 1, .. })), "{conflict:?}");
    store.commit(tx).await.unwrap();

    let all = store.read_all(1, 10).await.unwrap();
    assert_eq!(all.len(), 1, "only the good append was committed");
    assert_eq!(all[0].stream.as_ref().map(|(s, v)| (s, *v)), Some((&fine, 1)));
    assert_eq!(store.stream_version(&poison).await.unwrap(), 0);
}

/// A row this crate cannot read back is an error, not a panic.
#[tokio::test]
async fn unreadable_rows_are_errors() {
    let store = file_store(StoreConfig::default()).await;
    let r = store.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap();
    sqlx::query("UPDATE events SET created_at = ?1 WHERE global_position = ?2")
        .bind(i64::MAX)
        .bind(r.positions[0])
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.read_all(1, 10).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert!(err.to_string().contains("created_at"), "{err}");
}

#[tokio::test]
async fn bad_urls_are_errors() {
    let config = StoreConfig::default();
    let missing_dir = "sqlite:///nonexistent-pupsourcing-dir/sub/x.db";
    assert!(matches!(
        SqliteEventStore::connect(missing_dir, config.clone()).await,
        Err(Error::Database(_))
    ));
    assert!(matches!(
        SqliteEventStore::connect("sqlite://x.db?mode=bogus", config).await,
        Err(Error::Database(_))
    ));
}

#[tokio::test]
async fn new_event_with_empty_payload_and_no_optional_fields() {
    let store = file_store(StoreConfig::default()).await;
    let stream = new_stream();
    let bare = NewEvent::new("Bare", Vec::new());
    store.append(&stream, ExpectedVersion::Any, std::slice::from_ref(&bare)).await.unwrap();
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    assert!(read[0].payload.is_empty() && read[0].tags.is_empty());
    assert_eq!((read[0].metadata.as_ref(), read[0].trace_id), (None, None));
}

#[tokio::test]
async fn an_append_past_its_time_limit_times_out_and_writes_nothing() {
    let config = StoreConfig::default().append_timeout(std::time::Duration::from_millis(200));
    let store = file_store(config).await;
    let stream = new_stream();
    // Hold the write transaction, so the next append has to wait for it.
    let mut blocker = store.begin().await.unwrap();
    store.append_in(&mut blocker, &stream, ExpectedVersion::Any, &[event("A")]).await.unwrap();
    let err = store.append(&stream, ExpectedVersion::Any, &[event("B")]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    store.commit(blocker).await.unwrap();
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    assert_eq!(read.len(), 1);
}

#[tokio::test]
async fn a_stale_deferred_transaction_gets_a_retryable_conflict() {
    let store = file_store(StoreConfig::default()).await;
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::Any, &[event("A")]).await.unwrap();
    // A plain deferred transaction takes its snapshot at its first read...
    let mut conn = store.pool().acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    store.read_stream_in(&mut tx, &stream, VersionRange::all()).await.unwrap();
    // ...another writer commits...
    store.append(&stream, ExpectedVersion::Any, &[event("B")]).await.unwrap();
    // ...so this transaction cannot write any more: retry it whole.
    let err =
        store.append_in(&mut tx, &stream, ExpectedVersion::Any, &[event("C")]).await.unwrap_err();
    assert!(matches!(err, Error::TransactionConflict(_)), "{err:?}");
    assert!(err.is_conflict());
}

/// A stream's version cannot pass i64::MAX (see the testkit).
#[tokio::test]
async fn versions_at_the_largest_integer() {
    let store = file_store(StoreConfig::default()).await;
    let set_version = |store: SqliteEventStore, stream: StreamId, version: i64| async move {
        sqlx::query("UPDATE aggregate_heads SET aggregate_version = ?1 WHERE aggregate_id = ?2")
            .bind(version)
            .bind(stream.aggregate_id.as_bytes().as_slice())
            .execute(store.pool())
            .await
            .unwrap();
    };
    pupsourcing_testkit::limits::versions_stop_at_the_largest_integer(store, set_version).await;
}
