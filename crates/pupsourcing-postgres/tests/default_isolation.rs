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

/// Group commit's writers run at READ COMMITTED whatever the sessions' default: queued
/// conditional appends on disjoint boundaries are written together, and of those on one
/// boundary exactly one wins. (Above READ COMMITTED the group statement appends none of the
/// conditional requests, which then all run alone: correct, but one transaction each.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_conditional_appends_are_grouped_whatever_the_default() {
    for isolation in ["repeatable read", "serializable"] {
        let Some(store) = common::store_with_default_isolation(isolation).await else { return };
        let run = format!("{}", uuid::Uuid::now_v7());
        let appends = (0..8)
            .map(|i| {
                let (store, tag) = (store.clone(), format!("disjoint-{run}-{i}"));
                async move { store.append_if(&[tagged(&tag)], Some(&claim(&tag))).await }
            })
            .collect();
        let results = common::queued(&store, appends).await;
        let positions: Vec<i64> = results
            .into_iter()
            .map(|r| r.expect("disjoint boundaries all win").positions[0])
            .collect();
        let sql = format!(
            "SELECT count(DISTINCT xmin::text) FROM {}.events WHERE global_position = ANY($1)",
            store.config().schema
        );
        let transactions: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(&positions)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(
            transactions <= 4,
            "{isolation}: 8 queued appends took {transactions} transactions"
        );

        let tag = format!("shared-{run}");
        let appends = (0..8)
            .map(|_| {
                let (store, tag) = (store.clone(), tag.clone());
                async move { store.append_if(&[tagged(&tag)], Some(&claim(&tag))).await }
            })
            .collect();
        let results = common::queued(&store, appends).await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        let failed =
            results.iter().filter(|r| matches!(r, Err(Error::ConditionFailed { .. }))).count();
        assert_eq!((won, failed), (1, 7), "{isolation}: {results:?}");
    }
}
