//! The pipelined write path of MySQL / MariaDB (`append/write.rs`): several statements per
//! round trip, the server stopping at the first that fails. What a failure in the middle of a
//! round trip leaves behind (the answer, the transaction, the connection), the positions taken
//! with `LAST_INSERT_ID()`, cancellation, caller transactions, and what reads back.

mod common;

use pupsourcing_core::dcb::DcbStore;
use pupsourcing_core::{Error, EventStore, ExpectedVersion, NewEvent};
use pupsourcing_mysql::{MySqlEventStore, sqlx};
use pupsourcing_testkit::{event, new_stream};

/// Runs `sql` (`{db}` is the store's database) on the store's pool.
async fn exec(store: &MySqlEventStore, sql: &str) {
    let sql = sql.replace("{db}", &format!("`{}`", store.config().schema.as_str()));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
}

/// A single number from `sql` (`{db}` as in [`exec`]).
async fn number(store: &MySqlEventStore, sql: &str) -> i64 {
    let sql = sql.replace("{db}", &format!("`{}`", store.config().schema.as_str()));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap()
}

/// A failure of the tag index insert, after the events insert of the same round trip went
/// through, is no replay: the batch's ids are found, but only in the append's own transaction,
/// which is then rolled back. The append must fail and leave nothing, not answer "replayed"
/// with positions that do not exist. (A tag row squatting on the next position stands for
/// any fault of that statement.)
#[tokio::test]
async fn a_failed_tag_insert_is_not_taken_for_a_replay() {
    let Some(store) = common::fresh_store().await else { return };
    exec(&store, "INSERT INTO {db}.events_tags VALUES (X'74', 1, X'45'), (X'74', 2, X'45')").await;
    let tagged = || NewEvent::new("E", b"{}".to_vec()).with_tags(["t"]);

    let own = store.append_if(&[tagged()], None).await;
    assert!(matches!(own, Err(Error::Database(_))), "own transaction: {own:?}");
    let stream = store.append(&new_stream(), ExpectedVersion::Any, &[tagged()]).await;
    assert!(matches!(stream, Err(Error::Database(_))), "stream: {stream:?}");

    let mut tx = store.begin().await.unwrap();
    let before = store.append_if_in(&mut tx, &[event("Before")], None).await.unwrap();
    let inside = store.append_if_in(&mut tx, &[tagged()], None).await;
    assert!(matches!(inside, Err(Error::Database(_))), "caller transaction: {inside:?}");
    store.commit(tx).await.unwrap();

    assert_eq!(store.head().await.unwrap(), before.positions[0]);
    let read = store.read_all(1, 10).await.unwrap();
    assert_eq!(read.len(), 1, "only the event before the failure: {read:?}");
    assert_eq!(read[0].event_type, "Before");
}

/// The server's `max_allowed_packet`, in bytes.
async fn max_packet(store: &MySqlEventStore) -> usize {
    let max: u64 =
        sqlx::query_scalar("SELECT @@max_allowed_packet").fetch_one(store.pool()).await.unwrap();
    usize::try_from(max).unwrap()
}

/// A batch written in two round trips (two chunks) whose second chunk holds an id stored
/// before: the first chunk's events are in the append's transaction by then, but they were
/// not stored before the append. So it is a partial duplicate, not a replay, and nothing is
/// written; on every path (own transaction, stream, caller's transaction).
#[tokio::test]
async fn a_duplicate_in_a_later_chunk_is_a_partial_duplicate() {
    let Some(store) = common::fresh_store().await else { return };
    // Hex doubles the bytes: a fifth of a packet each, two events per round trip.
    let size = max_packet(&store).await / 5;
    let batch: Vec<_> = (0..3u8).map(|i| NewEvent::new("Big", vec![i; size])).collect();
    let stored = store.append_if(&batch[2..], None).await.unwrap();
    assert_eq!(stored.positions, [1]);

    let check =
        |result: pupsourcing_core::Result<pupsourcing_core::AppendResult>, path: &str| match result
        {
            Err(Error::PartialDuplicate { stored: 1, total: 3, first }) => {
                assert_eq!(first, batch[2].event_id, "{path}");
            }
            other => panic!("{path}: a partial duplicate, not {other:?}"),
        };
    check(store.append_if(&batch, None).await, "own transaction");
    check(store.append(&new_stream(), ExpectedVersion::Any, &batch).await, "stream");
    let mut tx = store.begin().await.unwrap();
    check(store.append_if_in(&mut tx, &batch, None).await, "caller transaction");
    store.commit(tx).await.unwrap();
    assert_eq!(store.head().await.unwrap(), 1, "nothing more was written");
}
