//! Adversarial tests from a review of the concurrency and error paths: cancelled BEGINs and
//! poisoned pooled connections, the store's own transactions under a REPEATABLE READ default,
//! commit checks, group commit with mixed expected versions, tags and validation round trips.

mod common;

use std::time::Duration;

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem};
use pupsourcing_core::{ConnectOptions, Error, EventStore, ExpectedVersion, NewEvent, StoreConfig};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_testkit::{event, new_stream};
use sqlx::postgres::PgPoolOptions;

/// Whether the session behind `conn` is inside a transaction that outlives one statement:
/// `now()` (the transaction's start) does not move between two statements.
async fn lingering_transaction(conn: &mut sqlx::PgConnection) -> bool {
    let now = "SELECT now()::text";
    let first: String = sqlx::query_scalar(now).fetch_one(&mut *conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let second: String = sqlx::query_scalar(now).fetch_one(&mut *conn).await.unwrap();
    first == second
}

/// A store on a pool of exactly one connection (so every call reuses it), in a new schema.
async fn one_connection_store() -> Option<(PgEventStore, StoreConfig)> {
    let base = common::fresh_store().await?;
    let config = base.config().clone();
    let options = ConnectOptions { max_connections: 1, ..ConnectOptions::default() };
    let store = PgEventStore::connect_with(&common::url(), config.clone(), options).await.unwrap();
    Some((store, config))
}

/// Cancels `store.begin()` (as a caller's `tokio::time::timeout` or `select!` would) until one
/// cancellation lands after BEGIN was sent: returns whether the pool's connection was then left
/// inside a transaction.
async fn cancel_begins_until_poisoned(store: &PgEventStore) -> bool {
    for attempt in 0..2000u64 {
        let limit = Duration::from_micros(attempt % 200);
        if let Ok(tx) = tokio::time::timeout(limit, store.begin()).await {
            store.rollback(tx.unwrap()).await.unwrap();
            continue;
        }
        // Let the dropped connection go back to the pool.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut conn = store.pool().acquire().await.unwrap();
        if lingering_transaction(&mut conn).await {
            return true;
        }
    }
    false
}

/// A caller's `store.begin()` cancelled after BEGIN was sent (by its own `timeout` or
/// `select!`) must not return its connection to the pool inside a transaction: the store's next
/// autocommit append on that connection would run inside it, return `Ok`, and be lost when the
/// connection closes. (It did before `begin` ran BEGIN in a task of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_begins_leave_no_transaction_behind() {
    let Some((store, config)) = one_connection_store().await else { return };
    assert!(!cancel_begins_until_poisoned(&store).await, "a cancelled BEGIN left a transaction");
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::NoStream, &[event("Acked")]).await.unwrap();
    store.close().await;
    let fresh = PgEventStore::new(
        PgPoolOptions::new().max_connections(1).connect(&common::url()).await.unwrap(),
        config,
    );
    let version = fresh.stream_version(&stream).await.unwrap();
    assert_eq!(version, 1, "append returned Ok, but the event was never committed");
}

/// Leaves the pooled connection of a one-connection store inside a transaction sqlx does not
/// know about, as a user's own cancelled `pool.begin()` can on a pool they share with the store.
async fn poison_one(store: &PgEventStore) {
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(lingering_transaction(&mut conn).await, "the connection is not poisoned");
}

/// Area 1: on a poisoned connection (see [`poison_one`]) the store's "autocommit" DCB read runs inside the
/// lingering transaction: its safe head skips that session's own markers and so covers the
/// uncommitted event, and the store caches it as `known_head`. `read_all` then serves a
/// phantom event, one that other sessions never see and that is rolled back later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_begin_makes_reads_return_phantom_events() {
    let Some((store, config)) = one_connection_store().await else { return };
    poison_one(&store).await;
    let tag = format!("phantom-{}", uuid::Uuid::now_v7());
    let events = [NewEvent::new("Phantom", b"{}".to_vec()).with_tags([tag.as_str()])];
    store.append_if(&events, None).await.unwrap();
    let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
    let read = store.read(&query, Default::default()).await.unwrap();
    let seen = store.read_all(1, 100).await.unwrap();
    store.close().await;
    let fresh = PgEventStore::new(
        PgPoolOptions::new().max_connections(1).connect(&common::url()).await.unwrap(),
        config,
    );
    let stored = fresh.read_all(1, 100).await.unwrap();
    assert_eq!(
        (read.events.len(), seen.len()),
        (stored.len(), stored.len()),
        "reads on the poisoned connection returned events the log does not hold"
    );
}

/// Area 1: a poisoned connection makes a tailing reader of the SAME store skip an
/// event for good. The store's DCB read on the poisoned connection caches a head covering that
/// session's uncommitted event (its own markers are skipped); `read_all` on a clean connection
/// then serves up to the cached head without that event; when the lingering transaction
/// commits, the event appears below where the tail already is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_begin_makes_a_tail_skip_an_event() {
    let Some(base) = common::fresh_store().await else { return };
    let config = base.config().clone();
    let options = ConnectOptions { max_connections: 2, ..ConnectOptions::default() };
    let store = PgEventStore::connect_with(&common::url(), config.clone(), options).await.unwrap();
    let other = base; // another process's store: its own pool
    // Both connections exist; poison one of them.
    let (a, b) = (store.pool().acquire().await.unwrap(), store.pool().acquire().await.unwrap());
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(20)).await;
    {
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Sort the two connections: hold the clean one so that the store uses the poisoned one.
    let mut a = store.pool().acquire().await.unwrap();
    let b = store.pool().acquire().await.unwrap();
    let (poisoned, clean) = if lingering_transaction(&mut a).await { (a, b) } else { (b, a) };
    drop(poisoned);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tag = format!("skipped-{}", uuid::Uuid::now_v7());
    let lost = [NewEvent::new("Skipped", b"{}".to_vec()).with_tags([tag.as_str()])];
    let at = store.append_if(&lost, None).await.unwrap().positions[0];
    let later = other.append_if(&[event("Later")], None).await.unwrap().positions[0];
    assert!(later > at);
    store.read(&Query::all(), Default::default()).await.unwrap(); // caches the head
    // Now hold the poisoned connection, so that the tail reads on the clean one.
    let poisoned = store.pool().acquire().await.unwrap();
    drop(clean);
    let mut tail: Vec<i64> =
        store.read_all(1, 100).await.unwrap().iter().map(|e| e.position).collect();
    // The lingering transaction commits (any later COMMIT on that connection does this).
    let mut poisoned = poisoned;
    sqlx::raw_sql("COMMIT").execute(&mut *poisoned).await.unwrap();
    drop(poisoned);
    let next = tail.last().copied().unwrap_or(0) + 1;
    tail.extend(store.read_all(next, 100).await.unwrap().iter().map(|e| e.position));
    let stored: Vec<i64> =
        other.read_all(1, 100).await.unwrap().iter().map(|e| e.position).collect();
    assert!(stored.contains(&at), "the event committed at last");
    assert_eq!(tail, stored, "the tail skipped position {at}");
}

/// A store whose pool sessions default to REPEATABLE READ, with an append time limit.
async fn repeatable_read_store_with_limit() -> Option<PgEventStore> {
    let base = common::repeatable_read_store().await?;
    let config = base.config().clone().append_timeout(Duration::from_secs(10));
    Some(PgEventStore::new(base.pool().clone(), config))
}

fn tagged(tag: &str) -> NewEvent {
    NewEvent::new("Claimed", b"{}".to_vec()).with_tags([tag])
}

fn claim(tag: &str) -> AppendCondition {
    AppendCondition::none_match(Query::from_items([QueryItem::tags([tag])]))
}

/// Area 2: with `append_timeout` set, the store's own append runs in a transaction it opens
/// itself, which must be READ COMMITTED whatever the session default (with a plain BEGIN,
/// every conditional `append_if` was refused with `Unsupported` under REPEATABLE READ).
#[tokio::test]
async fn limited_conditional_append_under_repeatable_read_default() {
    let Some(store) = repeatable_read_store_with_limit().await else { return };
    let tag = format!("limited-{}", uuid::Uuid::now_v7());
    let first = store.append_if(&[tagged(&tag)], Some(&claim(&tag))).await;
    assert!(first.is_ok(), "{first:?}");
    let again = store.append_if(&[tagged(&tag)], Some(&claim(&tag))).await;
    assert!(matches!(again, Err(Error::ConditionFailed { .. })), "{again:?}");
}

/// Same path, stream appends: under REPEATABLE READ an `Exact` race's loser fails with a
/// serialization failure (`TransactionConflict`) instead of `Concurrency`, where the same race
/// without a limit (or at READ COMMITTED) reports `Concurrency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_exact_race_under_repeatable_read_default() {
    let Some(store) = repeatable_read_store_with_limit().await else { return };
    let mut wrong = Vec::new();
    for _ in 0..20 {
        let stream = new_stream();
        store.append(&stream, ExpectedVersion::NoStream, &[event("Opened")]).await.unwrap();
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let (store, stream) = (store.clone(), stream.clone());
                tokio::spawn(async move {
                    store.append(&stream, ExpectedVersion::Exact(1), &[event("Raced")]).await
                })
            })
            .collect();
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) | Err(Error::Concurrency { .. }) => {}
                Err(other) => wrong.push(other.to_string()),
            }
        }
    }
    assert!(wrong.is_empty(), "{} losers got: {:?}", wrong.len(), wrong.first());
    println!("ok");
}

/// Area 5: the shared race of aggregate lifecycles through group commit
/// (`pupsourcing_testkit::group_races::mixed_expected_versions_outcomes`: every append gets
/// the outcome it would get alone), plus what only PostgreSQL shows: the events were written
/// by fewer transactions than events (groups formed), and no head row was created by an
/// `Exact` on a missing stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_mixed_expected_versions_race() {
    let Some(store) = common::fresh_store().await else { return };
    let race = pupsourcing_testkit::group_races::mixed_expected_versions_outcomes(&store).await;
    let mut problems = race.problems.clone();
    let schema = store.config().schema.to_string();
    let (transactions, events): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(DISTINCT xmin::text), count(*) FROM {schema}.events"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    let ghosts: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.aggregate_heads WHERE aggregate_type = 'Ghost'"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    if ghosts != 0 {
        problems.push(format!("{ghosts} head rows created by Exact on missing streams"));
    }
    println!(
        "{} attempts: {} appended, {} conflicts; {events} events in {transactions} transactions",
        race.attempts, race.appended, race.conflicts
    );
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
    assert!(
        transactions < events,
        "no group formed: {events} events in {transactions} transactions"
    );
}

/// Areas 6 and 7: awkward but valid input reads back as appended (see
/// `pupsourcing_testkit::round_trip`); prints the differences found. With metadata in a JSONB
/// column it failed: JSONB prints floats near the f64 limit as 309-digit integers, which
/// serde_json cannot parse (`f64::MAX`: every read touching the event failed forever) or parses
/// wrongly (1.7e308 read back as 1.7000000000000001e308); -0.0 read back as 0.0.
#[tokio::test]
async fn awkward_input_round_trips() {
    let Some(store) = common::fresh_store().await else { return };
    let differences = pupsourcing_testkit::round_trip::awkward_input_round_trips(store).await;
    for d in &differences {
        println!("postgres: {d}");
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Area 6: every event keeps exactly its own tags, in order, in the events table and in the tag
/// index: batches mixing events without tags, with many tags and with tags shared across
/// events (function path), and concurrent single tagged events (direct and group paths).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_keeps_its_own_tags() {
    let Some(store) = common::fresh_store().await else { return };
    let counts = [0usize, 3, 0, 1, 100, 0, 2, 0, 0, 7, 1];
    let batch = |round: usize| -> Vec<NewEvent> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let tags: Vec<String> = (0..n)
                    .map(|t| format!("t{}", (t * 7 + i + round) % 13 + t * 100))
                    .rev()
                    .collect();
                NewEvent::new(format!("E{i}"), vec![i as u8]).with_tags(tags)
            })
            .collect()
    };
    let mut sent = Vec::new();
    for round in 0..5 {
        let events = batch(round);
        let written = if round % 2 == 0 {
            store.append_if(&events, None).await.unwrap()
        } else {
            let stream = new_stream();
            store.append(&stream, ExpectedVersion::NoStream, &events).await.unwrap()
        };
        sent.extend(written.positions.into_iter().zip(events));
    }
    let singles: Vec<_> = (0..200usize)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let tags: Vec<String> =
                    (0..i % 5).map(|t| format!("s{}", (i + t) % 3 + t * 10)).collect();
                let event = NewEvent::new("Single", vec![]).with_tags(tags);
                let position = store.append_if(std::slice::from_ref(&event), None).await.unwrap();
                (position.positions[0], event)
            })
        })
        .collect();
    for single in singles {
        sent.push(single.await.unwrap());
    }
    let schema = store.config().schema.to_string();
    let rows: Vec<(i64, Vec<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT global_position, tags FROM {schema}.events ORDER BY 1"
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let index: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT tag, global_position FROM {schema}.events_tags ORDER BY 2, 1"
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut problems = Vec::new();
    let stored: std::collections::HashMap<i64, Vec<String>> = rows.into_iter().collect();
    let mut expected_index = Vec::new();
    for (position, event) in &sent {
        if stored.get(position) != Some(&event.tags) {
            problems.push(format!(
                "{position}: sent {:?}, stored {:?}",
                event.tags,
                stored.get(position)
            ));
        }
        expected_index.extend(event.tags.iter().map(|t| (t.clone(), *position)));
    }
    expected_index.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    if index != expected_index {
        problems.push(format!(
            "tag index: {} rows, expected {}",
            index.len(),
            expected_index.len()
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Area 4 (minor): a transaction the caller already COMMITted with a statement of its own is
/// reported as "not committed" by `store.commit`, although its events are stored.
#[tokio::test]
async fn commit_after_a_callers_own_commit_says_the_caller_ended_it() {
    let Some(store) = common::fresh_store().await else { return };
    let stream = new_stream();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    sqlx::raw_sql("COMMIT").execute(&mut *tx).await.unwrap();
    let result = store.commit(tx).await;
    let stored = store.stream_version(&stream).await.unwrap();
    assert_eq!(stored, 1);
    // Not "not committed": the caller's own COMMIT decided, and the error says so.
    let message = result.expect_err("no transaction was open to commit").to_string();
    assert!(message.contains("a statement of yours"), "{message}");
    assert!(!message.contains("nothing of it is stored"), "{message}");
}

/// A DCB read of the store's own on a pooled connection left inside a transaction (see
/// [`poison_one`]) that has written nothing must not keep the query's keys locked: the query
/// head's cheap answer takes them as transaction locks, which then last until that lingering
/// transaction ends (a later COMMIT or ROLLBACK on the connection, or its close), and every
/// append of a matching event (and every collapsed plan, through the global key) waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_poisoned_connection_keeps_no_writer_waiting() {
    let Some((store, config)) = one_connection_store().await else { return };
    let other = PgEventStore::connect(&common::url(), config).await.unwrap();
    let tag = format!("stalled-{}", uuid::Uuid::now_v7());
    other.append_if(&[tagged(&tag)], None).await.unwrap();
    poison_one(&store).await;
    let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
    for read in
        [store.read(&query, Default::default()), store.read(&Query::all(), Default::default())]
    {
        read.await.unwrap();
    }
    // A matching append, and a collapsed plan (global key exclusively), by another process.
    let wide = |n: usize| {
        let tags: Vec<String> = (0..100).map(|i| format!("{tag}-{n}-{i}")).collect();
        NewEvent::new("Wide", b"{}".to_vec()).with_tags(tags)
    };
    for events in [vec![tagged(&tag)], vec![wide(1), wide(2)]] {
        let append = other.append_if(&events, None);
        let waited = tokio::time::timeout(Duration::from_secs(3), append).await;
        assert!(waited.is_ok(), "an append waited 3 s for a read's locks on a poisoned connection");
        waited.unwrap().unwrap();
    }
}
