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
