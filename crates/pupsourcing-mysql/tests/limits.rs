//! The log's limits on a real MySQL / MariaDB server: what validation accepts reads back, what
//! a backend could not store is refused up front. Each store in a database of its own.

mod common;

use pupsourcing_core::{EventStore, StreamId};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_mysql::sqlx;

pupsourcing_testkit::limits_conformance!(common::store_with);

/// Moves a stream's head by hand.
async fn set_version(store: MySqlEventStore, stream: StreamId, version: i64) {
    let sql = format!(
        "UPDATE `{}`.aggregate_heads SET aggregate_version = ? \
         WHERE aggregate_type = ? AND aggregate_id = ?",
        store.config().schema
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(version)
        .bind(stream.aggregate_type.as_str())
        .bind(stream.aggregate_id.as_bytes().as_slice())
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn versions_stop_at_the_largest_integer() {
    let Some(store) = common::fresh_store().await else { return };
    pupsourcing_testkit::limits::versions_stop_at_the_largest_integer(store, set_version).await;
}

/// An event bigger than the server's `max_allowed_packet` is refused before anything is sent,
/// with a typed error; a batch bigger than one packet is split and written whole.
#[tokio::test]
async fn packets_are_checked_and_batches_split() {
    use pupsourcing_core::{Error, ExpectedVersion, NewEvent, ValidationError};
    let Some(store) = common::fresh_store().await else { return };
    let max: u64 =
        sqlx::query_scalar("SELECT @@max_allowed_packet").fetch_one(store.pool()).await.unwrap();
    let max = usize::try_from(max).unwrap();
    let stream = pupsourcing_testkit::new_stream();
    let huge = NewEvent::new("Huge", vec![7u8; max + 1]);
    let err = store.append(&stream, ExpectedVersion::Any, &[huge]).await.unwrap_err();
    assert!(matches!(err, Error::Validation(ValidationError::TooLong { .. })), "{err:?}");
    assert_eq!(store.head().await.unwrap(), 0);

    // Three events of 40% of a packet each: two statements, one transaction, one block.
    let batch: Vec<_> = (0..3).map(|i| NewEvent::new("Big", vec![i; max * 2 / 5])).collect();
    let written = store.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
    assert_eq!(written.positions, vec![1, 2, 3]);
    let read = store.read_all(1, 10).await.unwrap();
    assert_eq!(read.len(), 3);
    for (got, sent) in read.iter().zip(&batch) {
        assert_eq!(got.payload, sent.payload);
    }
}

/// A batch far past MySQL's 65,535 placeholders per statement, each event tagged, is one
/// contiguous block, read back whole through `read_all` and the tag index.
#[tokio::test]
async fn a_big_tagged_batch_is_one_block() {
    use pupsourcing_core::dcb::{DcbStore, Query, QueryItem, ReadOptions};
    use pupsourcing_core::{ExpectedVersion, NewEvent, StoreConfig};
    const EVENTS: usize = 20_000;
    let config = StoreConfig::default().max_batch_size(EVENTS);
    let Some(store) = common::store_with(config).await else { return };
    let batch: Vec<_> = (0..EVENTS)
        .map(|i| NewEvent::new("Bulk", vec![1, 2, 3]).with_tags(["bulk", &format!("n:{i}")]))
        .collect();
    let stream = pupsourcing_testkit::new_stream();
    let written = store.append(&stream, ExpectedVersion::NoStream, &batch).await.unwrap();
    assert_eq!(written.positions, (1..=EVENTS as i64).collect::<Vec<_>>());
    assert_eq!(written.last_version(), EVENTS as i64);
    let query = Query::from_items([QueryItem::tags(["bulk"])]);
    let read = store.read(&query, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.len(), EVENTS);
    let one = Query::from_items([QueryItem::types(["Bulk"]).with_tags(["n:12345", "bulk"])]);
    let read = store.read(&one, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.iter().map(|e| e.position).collect::<Vec<_>>(), [12_346]);
    // Appended again: a replay with the original positions, nothing written.
    let again = store.append(&stream, ExpectedVersion::Any, &batch).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.positions, written.positions);
    assert_eq!(store.head().await.unwrap(), EVENTS as i64);
}
