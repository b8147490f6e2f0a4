//! Transactions, time limits and isolation on MySQL / MariaDB: an error always means what it
//! says.

mod common;

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{Error, EventStore, ExpectedVersion, NewEvent};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_mysql::sqlx::{self, Connection};
use pupsourcing_testkit::lifecycle::{APPEND_LIMITS, timed_out_appends_wrote_nothing};
use pupsourcing_testkit::{event, new_stream};

/// Under every limit from 1 µs to 3 ms, a `Timeout` means nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_timed_out_append_wrote_nothing() {
    let Some(unlimited) = common::fresh_store().await else { return };
    let (mut appended, mut timed_out) = (0, 0);
    for limit in APPEND_LIMITS {
        let config = unlimited.config().clone().append_timeout(limit);
        let limited = MySqlEventStore::new(unlimited.pool().clone(), config);
        let counts = timed_out_appends_wrote_nothing(limited, unlimited.clone(), 40).await;
        (appended, timed_out) = (appended + counts.appended, timed_out + counts.timed_out);
    }
    assert!(appended > 0 && timed_out > 0, "{appended} appended, {timed_out} timed out");
    // Nothing a timed-out append began is left holding the counter: appends still run.
    let stream = new_stream();
    unlimited.append(&stream, ExpectedVersion::NoStream, &[event("After")]).await.unwrap();
}

/// A caller's transaction at REPEATABLE READ may append to streams (the head row is read with
/// a locking read), but conditional appends and reads in it are refused, writing nothing.
#[tokio::test]
async fn repeatable_read_refuses_conditions_and_reads() {
    let Some(store) = common::fresh_store().await else { return };
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::raw_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    let query = Query::from_items([QueryItem::tags(["rr:1"])]);
    let tagged = || NewEvent::new("T", vec![]).with_tags(["rr:1"]);
    let condition = AppendCondition::none_match(query.clone());
    let refused = store.append_if_in(&mut tx, &[tagged()], Some(&condition)).await;
    assert!(matches!(refused, Err(Error::Unsupported { .. })), "{refused:?}");
    let read = store.read_in(&mut tx, &query, ReadOptions::new()).await;
    assert!(matches!(read, Err(Error::Unsupported { .. })), "{read:?}");
    assert!(matches!(store.read_all_in(&mut tx, 1, 10).await, Err(Error::Unsupported { .. })));
    let stream = new_stream();
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    store.append_if_in(&mut tx, &[tagged()], None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 2);
}

/// InnoDB ends a deadlocked transaction itself (a rollback, after which the session would run
/// in autocommit mode): the victim's append fails with `TransactionConflict`, and committing
/// its transaction fails too, storing nothing of it; the survivor commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadlock_victim_cannot_commit() {
    let Some(store) = common::fresh_store().await else { return };
    let (first, second) = (new_stream(), new_stream());
    let mut a = store.begin().await.unwrap();
    store.append_in(&mut a, &first, ExpectedVersion::Any, &[event("A1")]).await.unwrap();
    // `b` locks the second stream's head, then waits for the counter `a` holds.
    let b = {
        let (store, second) = (store.clone(), second.clone());
        tokio::spawn(async move {
            let mut b = store.begin().await.unwrap();
            let result =
                store.append_in(&mut b, &second, ExpectedVersion::Any, &[event("B")]).await;
            (b, result)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // `a` now waits for the second stream's head: a cycle, which InnoDB breaks.
    let a_result = store.append_in(&mut a, &second, ExpectedVersion::Any, &[event("A2")]).await;
    let (b, b_result) = b.await.unwrap();
    let (victim, survivor) = match (&a_result, &b_result) {
        (Err(Error::TransactionConflict(_)), Ok(_)) => (a, b),
        (Ok(_), Err(Error::TransactionConflict(_))) => (b, a),
        other => panic!("expected one deadlock victim: {other:?}"),
    };
    let committed = store.commit(victim).await;
    assert!(committed.is_err(), "a transaction InnoDB rolled back was reported committed");
    store.commit(survivor).await.unwrap();
    let stored = store.read_all(1, 10).await.unwrap();
    let a_won = a_result.is_ok();
    assert_eq!(stored.len(), if a_won { 2 } else { 1 }, "only the survivor's events");
}
