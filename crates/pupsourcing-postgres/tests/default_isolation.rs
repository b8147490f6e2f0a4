//! A server (role, database or connection) default of REPEATABLE READ: the store's own
//! transactions and sessions still run at READ COMMITTED, so every conformance test passes
//! unchanged on pool connections that default to REPEATABLE READ; only a caller's own
//! transaction above READ COMMITTED is refused for conditional appends and DCB reads.

mod common;

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{Error, EventStore, NewEvent};

mod streams {
    pupsourcing_testkit::event_store_conformance!(super::common::repeatable_read_store);
}

mod dcb {
    pupsourcing_testkit::dcb_conformance!(super::common::repeatable_read_store);
}

fn tagged(tag: &str) -> NewEvent {
    NewEvent::new("Claimed", b"{}".to_vec()).with_tags([tag])
}

fn claim(tag: &str) -> AppendCondition {
    AppendCondition::none_match(Query::from_items([QueryItem::tags([tag])]))
}

/// The sessions really default to REPEATABLE READ (else this file tests nothing).
#[tokio::test]
async fn pool_sessions_default_to_repeatable_read() {
    let Some(store) = common::repeatable_read_store().await else { return };
    let level: String =
        sqlx::query_scalar("SHOW transaction_isolation").fetch_one(store.pool()).await.unwrap();
    assert_eq!(level, "repeatable read");
}

/// Conditional appends of the store's own: a single event (direct path), a batch (the
/// function in autocommit) and one in `store.begin()`: each succeeds once, then fails its
/// condition.
#[tokio::test]
async fn own_conditional_appends_work() {
    let Some(store) = common::repeatable_read_store().await else { return };
    let single = format!("single-{}", uuid::Uuid::now_v7());
    store.append_if(&[tagged(&single)], Some(&claim(&single))).await.unwrap();
    let again = store.append_if(&[tagged(&single)], Some(&claim(&single))).await;
    assert!(matches!(again, Err(Error::ConditionFailed { .. })), "{again:?}");

    let batch = format!("batch-{}", uuid::Uuid::now_v7());
    let events = [tagged(&batch), tagged(&batch)];
    store.append_if(&events, Some(&claim(&batch))).await.unwrap();
    let again = store.append_if(&[tagged(&batch)], Some(&claim(&batch))).await;
    assert!(matches!(again, Err(Error::ConditionFailed { .. })), "{again:?}");

    let in_tx = format!("tx-{}", uuid::Uuid::now_v7());
    let mut tx = store.begin().await.unwrap();
    store.append_if_in(&mut tx, &[tagged(&in_tx)], Some(&claim(&in_tx))).await.unwrap();
    let query = Query::from_items([QueryItem::tags([in_tx.as_str()])]);
    let read = store.read_in(&mut tx, &query, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.len(), 1);
    store.commit(tx).await.unwrap();
}

/// A caller's own REPEATABLE READ transaction is still refused for a conditional append.
#[tokio::test]
async fn callers_repeatable_read_transaction_is_refused() {
    let Some(store) = common::repeatable_read_store().await else { return };
    let tag = format!("caller-{}", uuid::Uuid::now_v7());
    let mut tx = store.pool().begin().await.unwrap();
    let refused = store.append_if_in(&mut tx, &[tagged(&tag)], Some(&claim(&tag))).await;
    assert!(matches!(refused, Err(Error::Unsupported { .. })), "{refused:?}");
}
