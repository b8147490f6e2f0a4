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
/// in autocommit mode): the victim's append fails with `TransactionConflict`, a later append in
/// it and committing it fail too, storing nothing of it; the survivor commits.
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
    store.commit(survivor).await.unwrap();
    // Nothing holds the counter now: an append run in autocommit mode would succeed, its
    // statements each committed on their own.
    let mut victim = victim;
    let (stream, late) = (new_stream(), [event("C")]);
    let after = store.append_in(&mut victim, &stream, ExpectedVersion::Any, &late).await;
    assert!(after.is_err(), "an append after the deadlock ran in autocommit mode: {after:?}");
    let committed = store.commit(victim).await;
    assert!(committed.is_err(), "a transaction InnoDB rolled back was reported committed");
    let stored = store.read_all(1, 10).await.unwrap();
    let a_won = a_result.is_ok();
    assert_eq!(stored.len(), if a_won { 2 } else { 1 }, "only the survivor's events");
}

/// A transaction a statement of the caller's already ended cannot be committed: `commit`
/// fails, and nothing of it is stored; the counter is free again.
#[tokio::test]
async fn commit_of_an_ended_transaction_is_an_error() {
    let Some(store) = common::fresh_store().await else { return };
    let stream = new_stream();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    assert!(store.commit(tx).await.is_err());
    assert_eq!(store.stream_version(&stream).await.unwrap(), 0);
    store.append(&stream, ExpectedVersion::NoStream, &[event("B")]).await.unwrap();
}

/// Appends cancelled at random points (their futures dropped: before, inside or after BEGIN,
/// while holding the counter) leave nothing behind: the connection of a cut-short append is
/// closed, so the server rolls its transaction back and the counter is free again. Appending
/// the same events again tells whether each was written (a replay) or not, and never fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_appends_never_hold_the_counter() {
    use rand::Rng;
    use std::time::Duration;
    let Some(store) = common::fresh_store().await else { return };
    let (mut written, mut not_written) = (0, 0);
    for _ in 0..60 {
        let (stream, events) = (new_stream(), [event("A"), event("B")]);
        let micros = rand::rng().random_range(0..3000);
        let cut = Duration::from_micros(micros);
        let append = store.append(&stream, ExpectedVersion::NoStream, &events);
        let _ = tokio::time::timeout(cut, append).await;
        let again = tokio::time::timeout(
            Duration::from_secs(10),
            store.append(&stream, ExpectedVersion::Any, &events),
        );
        let again = again.await.expect("no lock is left held").expect("the retry appends");
        if again.replayed {
            written += 1
        } else {
            not_written += 1
        }
        assert_eq!(store.stream_version(&stream).await.unwrap(), 2);
    }
    assert!(written + not_written == 60, "{written} written, {not_written} not");
    eprintln!("cancelled appends: {written} had been written, {not_written} had not");
}
