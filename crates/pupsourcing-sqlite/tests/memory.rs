//! In-memory databases: every in-memory URL form opens one database per store, shared by all of
//! the store's pooled connections and kept alive while the store lives.

use std::sync::Arc;

use pupsourcing_core::dcb::{DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{EventStore, ExpectedVersion, StoreConfig, VersionRange};
use pupsourcing_sqlite::SqliteEventStore;
use pupsourcing_testkit::{event, new_stream};
use tokio::sync::Barrier;

/// Every spelling of an in-memory database.
const MEMORY_URLS: &[&str] =
    &["", "sqlite:", "sqlite://", "sqlite::memory:", "sqlite:file::memory:", ":memory:"];

/// Connections held at once from the read pool, so each read below runs on a different one.
const CONNECTIONS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_in_memory_url_is_one_database_for_all_pooled_connections() {
    for url in MEMORY_URLS {
        let store = SqliteEventStore::connect(url, StoreConfig::default()).await.unwrap();
        store.migrate().await.unwrap();
        let stream = new_stream();
        let tagged = event("Opened").with_tags(["memory:1"]);
        store.append(&stream, ExpectedVersion::NoStream, &[tagged]).await.unwrap();

        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut conn = store.pool().acquire().await.unwrap();
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{url:?}: a pooled connection sees no events: {e}"));
            assert_eq!(count, 1, "{url:?}");
            held.push(conn);
        }
        drop(held);
        assert_eq!(store.read_stream(&stream, VersionRange::all()).await.unwrap().len(), 1);
        let query = Query::from_items([QueryItem::tags(["memory:1"])]);
        assert_eq!(store.read(&query, ReadOptions::new()).await.unwrap().events.len(), 1);
        assert_eq!(store.read_all(0, 10).await.unwrap().len(), 1, "{url:?}");

        // Another store on the same URL is another database.
        let other = SqliteEventStore::connect(url, StoreConfig::default()).await.unwrap();
        other.migrate().await.unwrap();
        assert_eq!(other.head().await.unwrap(), 0, "{url:?}");
    }
}

/// Writers and readers at once on one in-memory database: no locking errors, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers_share_the_in_memory_database() {
    const TASKS: usize = 4;
    const APPENDS: usize = 25;
    let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    let barrier = Arc::new(Barrier::new(2 * TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (writer, start) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let stream = new_stream();
            for _ in 0..APPENDS {
                writer.append(&stream, ExpectedVersion::Any, &[event("Ticked")]).await.unwrap();
            }
        }));
        let (reader, start) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let mut last = 0;
            while last < (TASKS * APPENDS) as i64 {
                assert!(std::time::Instant::now() < deadline, "the writers did not finish");
                let read = reader.read_all(0, 1000).await.unwrap();
                assert!(read.len() as i64 >= last, "reads never go back");
                last = read.len() as i64;
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.head().await.unwrap(), (TASKS * APPENDS) as i64);
}
