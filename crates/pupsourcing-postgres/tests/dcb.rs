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
