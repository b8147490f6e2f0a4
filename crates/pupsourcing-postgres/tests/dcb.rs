//! The DCB conformance suite on a real PostgreSQL server, each test in a schema of its own.

mod common;

pupsourcing_testkit::dcb_conformance!(common::fresh_store);

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{EventStore, NewEvent};

fn tagged(tag: &str) -> NewEvent {
    NewEvent::new("Tick", b"{}".to_vec()).with_tags([tag])
}

/// Read-your-writes: a client's read of its own boundary sees its committed append while an
/// unrelated writer is still in flight below it, and decides on it without a false conflict.
/// A writer that could add a matching event still holds the read back, and so does the head of
/// the whole log.
#[tokio::test]
async fn a_query_head_waits_only_for_writers_of_matching_events() {
    let Some(store) = common::fresh_store().await else { return };
    let mine = Query::from_items([QueryItem::tags(["mine:1"])]);

    let mut unrelated = store.begin().await.unwrap();
    store.append_if_in(&mut unrelated, &[tagged("other:1")], None).await.unwrap();
    let appended = store.append_if(&[tagged("mine:1")], None).await.unwrap();
    let position = appended.positions[0];

    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.len(), 1, "the client's own append is read");
    assert!(read.head >= position);
    let next = AppendCondition::none_after(mine.clone(), read.head);
    store.append_if(&[tagged("mine:1")], Some(&next)).await.expect("no false conflict");
    assert!(store.head().await.unwrap() < position, "the log's head still waits");

    // A writer of a matching event holds the query's head back until it ends.
    let mut related = store.begin().await.unwrap();
    store.append_if_in(&mut related, &[tagged("mine:1")], None).await.unwrap();
    let held = store.read(&mine, ReadOptions::new()).await.unwrap();
    let stale = AppendCondition::none_after(mine.clone(), held.head);
    store.commit(related).await.unwrap();
    let after = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!(after.events.len(), 3);
    assert!(held.head < after.events[2].position, "the head waited for the related writer");
    let refused = store.append_if(&[tagged("mine:1")], Some(&stale)).await;
    assert!(matches!(refused, Err(pupsourcing_core::Error::ConditionFailed { .. })));
    store.commit(unrelated).await.unwrap();
    assert_eq!(store.read(&Query::all(), ReadOptions::new()).await.unwrap().events.len(), 4);
}

/// A read that finds nothing above the store's cached log head is answered below it, in one
/// statement (its head is the cached one, not the query's newer head); a read that finds an
/// event above it pays for the query's head, which a matching writer in flight holds back. A
/// read answering with a head above that writer's event (say the last event it found) would
/// let the stale condition below pass.
#[tokio::test]
async fn reads_below_the_cached_head_never_pass_a_matching_writer_in_flight() {
    let Some(store) = common::fresh_store().await else { return };
    let mine = Query::from_items([QueryItem::tags(["mine:2"])]);
    let first = store.append_if(&[tagged("mine:2")], None).await.unwrap().positions[0];
    let known = store.head().await.unwrap();
    assert_eq!(known, first);

    // An unrelated writer in flight: a fresh boundary's query head would pass it, the cached
    // head does not, and the read of the fresh boundary is answered below the cached head.
    let mut unrelated = store.begin().await.unwrap();
    store.append_if_in(&mut unrelated, &[tagged("other:2")], None).await.unwrap();
    let fresh = Query::from_items([QueryItem::tags(["fresh:2"])]);
    let cold = store.read(&fresh, ReadOptions::new()).await.unwrap();
    assert_eq!((cold.events.len(), cold.head), (0, known), "answered below the cached head");
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!((read.events.len(), read.head), (1, known), "answered below the cached head");
    store.commit(unrelated).await.unwrap();

    // A matching writer in flight, then a matching commit above it: the read must not answer
    // with a head at or above the writer's event.
    let mut related = store.begin().await.unwrap();
    let held = store.append_if_in(&mut related, &[tagged("mine:2")], None).await.unwrap();
    let above = store.append_if(&[tagged("mine:2")], None).await.unwrap();
    assert!(above.positions[0] > held.positions[0] && held.positions[0] > known);
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert!(read.head < held.positions[0], "the head passed a matching writer in flight");
    assert_eq!(read.events.len(), 1, "only the events up to the head");
    let stale = AppendCondition::none_after(mine.clone(), read.head);
    store.commit(related).await.unwrap();
    let refused = store.append_if(&[tagged("mine:2")], Some(&stale)).await;
    assert!(matches!(refused, Err(pupsourcing_core::Error::ConditionFailed { .. })));

    // Read-your-writes: the client's own append above the cached head is read.
    let own = store.append_if(&[tagged("mine:2")], None).await.unwrap().positions[0];
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.last().map(|e| e.position), Some(own));
    assert!(read.head >= own);
}

/// The command executor's write: the events and the command's record in one statement, the
/// record (with the events' positions) only when the events were appended.
#[tokio::test]
async fn a_command_is_recorded_with_its_events_or_not_at_all() {
    use pupsourcing_core::dcb::CommandRecord;
    let Some(store) = common::fresh_store().await else { return };
    let count = || async {
        let sql = format!("SELECT count(*) FROM {}.commands", store.config().schema);
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let query = Query::from_items([QueryItem::tags(["user:ada"])]);
    let record = CommandRecord {
        command_type: "Register".into(),
        data: serde_json::json!({ "user": "ada" }),
        metadata: Some(serde_json::json!({ "by": "test" })),
        positions: vec![],
    };
    let condition = AppendCondition::none_match(query.clone());
    let events = [tagged("user:ada"), tagged("user:ada")];
    let written = store.append_if_and_record(&events, Some(&condition), &record).await.unwrap();
    let sql = format!("SELECT positions, data, metadata FROM {}.commands", store.config().schema);
    let (positions, data, metadata): (Vec<i64>, serde_json::Value, Option<serde_json::Value>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap();
    assert_eq!(positions, written.positions);
    assert_eq!((data, metadata), (record.data.clone(), record.metadata.clone()));

    let one = [tagged("user:ada")];
    let refused = store.append_if_and_record(&one, Some(&condition), &record).await;
    assert!(matches!(refused, Err(pupsourcing_core::Error::ConditionFailed { .. })));
    assert_eq!(count().await, 1, "a refused command is not recorded");
    assert_eq!(store.read(&query, ReadOptions::new()).await.unwrap().events.len(), 2);

    let nothing = store.append_if_and_record(&[], Some(&condition), &record).await.unwrap();
    assert!(nothing.positions.is_empty());
    assert_eq!(count().await, 2, "a decision to append nothing is recorded");
}
