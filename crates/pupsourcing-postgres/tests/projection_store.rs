//! The PostgreSQL half of projections: the partition hash stored by every append path, scoped
//! and partitioned gap-free batch reads, checkpoints by compare-and-set, dead letters, lag and
//! stalls.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use pupsourcing_core::dcb::{AppendCondition, CommandRecord, DcbStore, Query, QueryItem};
use pupsourcing_core::projection::{DeadLetter, Partition, ProjectionStore, Scope, partition_hash};
use pupsourcing_core::{
    AppendResult, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreConfig,
    StreamId,
};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_testkit::{event, new_stream};
use sqlx::AssertSqlSafe;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// What a test appended: each event with the stream it went to, to compute its hash in Rust.
#[derive(Default)]
struct Appended(Vec<(Option<StreamId>, NewEvent)>);

impl Appended {
    fn add(&mut self, stream: Option<&StreamId>, events: &[NewEvent]) {
        self.0.extend(events.iter().map(|e| (stream.cloned(), e.clone())));
    }

    fn expected(&self) -> HashMap<Uuid, i64> {
        self.0
            .iter()
            .map(|(stream, e)| (e.event_id, i64::from(partition_hash(stream.as_ref(), e))))
            .collect()
    }
}

/// The stored partition hash of every event, by event id, read back with raw SQL.
async fn stored_hashes(store: &PgEventStore) -> HashMap<Uuid, i64> {
    let sql = format!("SELECT event_id, partition_hash FROM {}.events", store.config().schema);
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as(AssertSqlSafe(sql)).fetch_all(store.pool()).await.unwrap();
    rows.into_iter().collect()
}

/// How many transactions wrote the events with these positions.
async fn writing_transactions(store: &PgEventStore, positions: &[i64]) -> i64 {
    let sql = format!(
        "SELECT count(DISTINCT xmin::text) FROM {}.events WHERE global_position = ANY($1)",
        store.config().schema
    );
    sqlx::query_scalar(AssertSqlSafe(sql)).bind(positions).fetch_one(store.pool()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_append_path_stores_the_partition_hash() {
    let Some(store) = common::fresh_store().await else { return };
    let mut appended = Appended::default();

    // Streams: the direct path (one event, NoStream then Exact), the function (batches),
    // explicit partition keys, and the caller's transaction.
    let order = new_stream();
    let first = [event("Placed")];
    store.append(&order, ExpectedVersion::NoStream, &first).await.unwrap();
    appended.add(Some(&order), &first);
    let next = [event("Paid")];
    store.append(&order, ExpectedVersion::Exact(1), &next).await.unwrap();
    appended.add(Some(&order), &next);
    let batch = [event("Shipped"), event("Delivered").with_partition_key("order-42")];
    store.append(&order, ExpectedVersion::Exact(2), &batch).await.unwrap();
    appended.add(Some(&order), &batch);
    let other = new_stream();
    let batch = [event("Opened"), event("Closed")];
    store.append(&other, ExpectedVersion::NoStream, &batch).await.unwrap();
    appended.add(Some(&other), &batch);
    let keyed = [event("Renamed").with_partition_key("customer-7")];
    store.append(&other, ExpectedVersion::Exact(2), &keyed).await.unwrap();
    appended.add(Some(&other), &keyed);
    let in_tx = new_stream();
    let mut tx = store.begin().await.unwrap();
    let one = [event("InTx")];
    store.append_in(&mut tx, &in_tx, ExpectedVersion::NoStream, &one).await.unwrap();
    let two = [event("InTx"), event("InTx").with_partition_key("k")];
    store.append_in(&mut tx, &in_tx, ExpectedVersion::Exact(1), &two).await.unwrap();
    store.commit(tx).await.unwrap();
    appended.add(Some(&in_tx), &one);
    appended.add(Some(&in_tx), &two);

    // DCB: with and without a condition, single (direct path) and batch (function), with and
    // without partition keys, in the caller's transaction too.
    let dcb = [event("Dcb").with_tags(["t:1"])];
    store.append_if(&dcb, None).await.unwrap();
    appended.add(None, &dcb);
    let dcb = [event("Dcb").with_tags(["t:2"]), event("Dcb").with_partition_key("course-1")];
    store.append_if(&dcb, None).await.unwrap();
    appended.add(None, &dcb);
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:3"])]));
    let dcb = [event("Dcb").with_tags(["t:3"]).with_partition_key("student-9")];
    store.append_if(&dcb, Some(&cond)).await.unwrap();
    appended.add(None, &dcb);
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:4"])]));
    let dcb = [event("Dcb").with_tags(["t:4"]), event("Dcb").with_tags(["t:4"])];
    store.append_if(&dcb, Some(&cond)).await.unwrap();
    appended.add(None, &dcb);
    let mut tx = store.begin().await.unwrap();
    let dcb = [event("DcbInTx")];
    store.append_if_in(&mut tx, &dcb, None).await.unwrap();
    store.commit(tx).await.unwrap();
    appended.add(None, &dcb);

    // The command executor's recorded appends: a batch (append_recorded.sql) and a single event
    // (append_direct_recorded.sql).
    let record = CommandRecord {
        command_type: "Enroll".into(),
        data: serde_json::json!({ "student": 1 }),
        metadata: None,
        positions: Vec::new(),
    };
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:5"])]));
    let dcb = [event("Enrolled").with_tags(["t:5"]), event("Enrolled").with_partition_key("s-1")];
    store.append_if_and_record(&dcb, Some(&cond), &record).await.unwrap();
    appended.add(None, &dcb);
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:6"])]));
    let dcb = [event("Enrolled").with_tags(["t:6"]).with_partition_key("s-2")];
    store.append_if_and_record(&dcb, Some(&cond), &record).await.unwrap();
    appended.add(None, &dcb);

    // Group commit: many queued single-event appends from many tasks (streams, NoStream and
    // Exact, DCB with and without conditions, with command records, keys), written in few
    // transactions.
    let mut work = Vec::new();
    let mut group = Appended::default();
    for i in 0..24 {
        let store = store.clone();
        let stream = new_stream();
        let e = match i % 3 {
            0 => event("Grouped"),
            1 => event("Grouped").with_tags([format!("g:{i}")]),
            _ => event("Grouped").with_partition_key(format!("key-{i}")),
        };
        if i % 2 == 0 {
            group.add(Some(&stream), std::slice::from_ref(&e));
            work.push(tokio::spawn(async move {
                store.append(&stream, ExpectedVersion::NoStream, &[e]).await
            }));
        } else {
            group.add(None, std::slice::from_ref(&e));
            let cond =
                AppendCondition::none_match(Query::from_items([QueryItem::tags([format!(
                    "g:{i}"
                )])]));
            let (cond, record) = ((i % 4 == 1).then_some(cond), record.clone());
            work.push(tokio::spawn(async move {
                if i % 8 == 5 {
                    store.append_if_and_record(&[e], cond.as_ref(), &record).await
                } else {
                    store.append_if(&[e], cond.as_ref()).await
                }
            }));
        }
    }
    let futures: Vec<_> = work.into_iter().map(|task| async move { task.await.unwrap() }).collect();
    let results: Vec<AppendResult> =
        common::queued(&store, futures).await.into_iter().map(Result::unwrap).collect();
    let positions: Vec<i64> = results.iter().map(|r| r.positions[0]).collect();
    assert!(
        writing_transactions(&store, &positions).await < positions.len() as i64,
        "the queued appends were written in groups"
    );
    // The blockers' events (any stream) are appended too.
    let mut expected = appended.expected();
    expected.extend(group.expected());
    let stored = stored_hashes(&store).await;
    for (id, hash) in &expected {
        assert_eq!(stored.get(id), Some(hash), "stored hash of event {id}");
    }

    // Appends with an append time limit run the function in an explicit transaction.
    let config = store.config().clone();
    let limited =
        PgEventStore::new(store.pool().clone(), config.append_timeout(Duration::from_secs(30)));
    let limited_stream = new_stream();
    let one = [event("Limited")];
    limited.append(&limited_stream, ExpectedVersion::NoStream, &one).await.unwrap();
    appended.add(Some(&limited_stream), &one);
    let stored = stored_hashes(&store).await;
    for (id, hash) in appended.expected() {
        assert_eq!(stored.get(&id), Some(&hash), "stored hash of event {id}");
    }
}

/// A log of varied events: two aggregate types, contexts, DCB events, tags and keys.
async fn varied_log(store: &PgEventStore) -> Appended {
    let mut appended = Appended::default();
    for i in 0..40u32 {
        let kind = if i % 3 == 0 { "Customer" } else { "Order" };
        let stream = StreamId::new(kind, Uuid::now_v7());
        let context = ["sales", "billing"][(i % 2) as usize];
        let mut events = vec![
            event("Placed").with_bounded_context(context).with_tags([format!("order:{i}")]),
            event("Paid").with_tags([format!("order:{i}"), format!("customer:{}", i % 5)]),
        ];
        if i % 4 == 0 {
            events.push(event("Shipped").with_partition_key(format!("region-{}", i % 3)));
        }
        store.append(&stream, ExpectedVersion::NoStream, &events).await.unwrap();
        appended.add(Some(&stream), &events);
        let dcb = [event(["Enrolled", "Placed"][(i % 2) as usize])
            .with_tags([format!("course:{}", i % 4), format!("customer:{}", i % 5)])];
        store.append_if(&dcb, None).await.unwrap();
        appended.add(None, &dcb);
    }
    appended
}

fn scopes() -> Vec<Scope> {
    vec![
        Scope::all(),
        Scope::all().aggregate_types(["Order"]),
        Scope::all().aggregate_types(["Order", "Customer"]).bounded_contexts(["sales"]),
        Scope::all().bounded_contexts(["billing"]),
        Scope::all().event_types(["Paid", "Enrolled"]),
        Scope::all().query(Query::all()),
        // Multi-item: typed and tagged, tag-only with two tags, type-only.
        Scope::all().query(Query::from_items([
            QueryItem::types(["Placed"]).with_tags(["order:3"]),
            QueryItem::tags(["course:1", "customer:2"]),
            QueryItem::types(["Shipped"]),
        ])),
        Scope::all()
            .event_types(["Placed"])
            .query(Query::from_items([QueryItem::tags(["customer:1"])])),
    ]
}

/// Reads every batch of `partition` from 0 in pages of `limit`, moving as a processor would.
async fn read_partition(
    store: &PgEventStore,
    scope: &Scope,
    partition: Partition,
    limit: usize,
) -> Vec<RecordedEvent> {
    let mut after: Position = 0;
    let mut events = Vec::new();
    loop {
        let batch = store.read_batch(scope, partition, after, limit).await.unwrap();
        assert!(batch.events.len() <= limit);
        assert!(batch.events.iter().all(|e| e.position > after && e.position <= batch.head));
        assert!(batch.events.windows(2).all(|w| w[0].position < w[1].position));
        let end = batch.end(limit);
        let done = batch.events.is_empty();
        events.extend(batch.events);
        if done {
            return events;
        }
        assert!(end > after);
        after = end;
    }
}

#[tokio::test]
async fn batches_hold_exactly_the_scoped_events_of_their_partition() {
    let Some(store) = common::fresh_store().await else { return };
    let appended = varied_log(&store).await;
    let hashes = appended.expected();
    let log = store.read_all(1, 10_000).await.unwrap();
    assert_eq!(log.len(), appended.0.len());
    let ids = |events: &[RecordedEvent]| events.iter().map(|e| e.event_id).collect::<Vec<_>>();
    for scope in scopes() {
        let in_scope: Vec<RecordedEvent> =
            log.iter().filter(|e| scope.matches(e)).cloned().collect();
        assert!(!in_scope.is_empty() && (scope.is_all() || in_scope.len() < log.len()));
        let whole = read_partition(&store, &scope, Partition::all(), 7).await;
        assert_eq!(whole, in_scope, "scope {scope:?}");
        let mut union = BTreeSet::new();
        for partition in Partition::every(4) {
            let expected: Vec<RecordedEvent> = in_scope
                .iter()
                .filter(|e| partition.contains(hashes[&e.event_id] as u32))
                .cloned()
                .collect();
            let read = read_partition(&store, &scope, partition, 5).await;
            assert_eq!(ids(&read), ids(&expected), "scope {scope:?}, partition {partition}");
            for e in &read {
                assert!(union.insert(e.position), "{} is in two partitions", e.position);
            }
        }
        let all: BTreeSet<Position> = in_scope.iter().map(|e| e.position).collect();
        assert_eq!(union, all, "the partitions of {scope:?} cover its events");
        // Some partition is a proper share (the filter is applied at all). Hashes are random,
        // so only scopes with enough events are sure to spread.
        assert!(
            in_scope.len() < 20
                || Partition::every(4).any(|p| {
                    let n =
                        in_scope.iter().filter(|e| p.contains(hashes[&e.event_id] as u32)).count();
                    n > 0 && n < in_scope.len()
                })
        );
    }
    // One aggregate's events share a partition.
    let orders: Vec<&RecordedEvent> = log.iter().filter(|e| e.stream.is_some()).collect();
    for e in &orders {
        let (stream, _) = e.stream.as_ref().unwrap();
        let key_free = log.iter().filter(|x| {
            x.stream.as_ref().is_some_and(|(s, _)| s == stream) && x.event_type != "Shipped"
        });
        assert!(key_free.map(|x| hashes[&x.event_id]).collect::<BTreeSet<_>>().len() == 1);
    }
    // A limit of 0 is refused; past the head there is nothing.
    assert!(store.read_batch(&Scope::all(), Partition::all(), 0, 0).await.is_err());
    let batch = store.read_batch(&Scope::all(), Partition::all(), 0, 1).await.unwrap();
    assert!(batch.events.len() == 1 && batch.head == log.last().unwrap().position);
    let batch = store.read_batch(&Scope::all(), Partition::all(), batch.head, 10).await.unwrap();
    assert!(batch.events.is_empty());
    // An invalid scope is refused before any statement.
    let bad = Scope::all().event_types([""]);
    assert!(store.read_batch(&bad, Partition::all(), 0, 10).await.is_err());
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i64 {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await.unwrap();
    i64::from(pid)
}

#[tokio::test]
async fn batches_stop_below_an_uncommitted_append_and_stall_names_its_session() {
    let Some(store) = common::fresh_store().await else { return };
    assert_eq!(store.stall().await.unwrap(), None, "an empty log is not stalled");
    let before = new_stream();
    let first = store.append(&before, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None, "nothing in flight");

    let mut tx = store.begin().await.unwrap();
    let pid = backend_pid(&mut tx).await;
    let (stream, held) = (new_stream(), [event("Held")]);
    let held = store.append_in(&mut tx, &stream, ExpectedVersion::Any, &held).await.unwrap();
    let (stream, later) = (new_stream(), [event("Later")]);
    let later = store.append(&stream, ExpectedVersion::Any, &later).await.unwrap();
    assert!(later.positions[0] > held.positions[0]);

    for partition in
        [Partition::all(), Partition::new(0, 2).unwrap(), Partition::new(1, 2).unwrap()]
    {
        let batch = store.read_batch(&Scope::all(), partition, 0, 100).await.unwrap();
        assert!(batch.head < held.positions[0], "the head stops below the uncommitted append");
        assert!(batch.events.iter().all(|e| e.position < held.positions[0]));
    }
    let batch = store.read_batch(&Scope::all(), Partition::all(), 0, 100).await.unwrap();
    assert_eq!(batch.events.iter().map(|e| e.position).collect::<Vec<_>>(), first.positions);
    let pending = store.pending(&Scope::all(), Partition::all(), 0).await.unwrap();
    assert_eq!(pending.events, 1, "pending stops at the head too");

    let stall = store.stall().await.unwrap().expect("the open append holds the head back");
    assert_eq!(stall.session, Some(pid));
    assert_eq!(stall.position, batch.head);
    assert!(stall.transaction_age.is_some());
    assert_eq!(stall.application_name, None, "sqlx sets no application_name");

    store.commit(tx).await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None);
    let batch = store.read_batch(&Scope::all(), Partition::all(), 0, 100).await.unwrap();
    let positions: Vec<Position> = batch.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![first.positions[0], held.positions[0], later.positions[0]]);
    assert_eq!(batch.head, later.positions[0]);
}

#[tokio::test]
async fn stall_reports_the_application_name() {
    use sqlx::ConnectOptions;
    use sqlx::postgres::PgConnectOptions;
    let Some(store) = common::fresh_store().await else { return };
    let options: PgConnectOptions = common::url().parse().unwrap();
    let mut conn = options.application_name("slow-writer").connect().await.unwrap();
    let writer = PgEventStore::new(store.pool().clone(), store.config().clone());
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    writer.append_in(&mut tx, &new_stream(), ExpectedVersion::Any, &[event("Held")]).await.unwrap();
    store.append(&new_stream(), ExpectedVersion::Any, &[event("Later")]).await.unwrap();
    let stall = store.stall().await.unwrap().expect("stalled");
    assert_eq!(stall.application_name.as_deref(), Some("slow-writer"));
    tx.rollback().await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_two_concurrent_advances_wins() {
    let Some(store) = common::fresh_store().await else { return };
    let partition = Partition::new(1, 3).unwrap();
    for round in 0..50 {
        let from = store.checkpoint("race", partition).await.unwrap().position;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let racers: Vec<JoinHandle<(bool, Position)>> = (1..=2)
            .map(|step| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut tx = store.begin().await.unwrap();
                    barrier.wait().await;
                    let to = from + step;
                    let won = store
                        .advance_checkpoint_in(&mut tx, "race", partition, from, to)
                        .await
                        .unwrap();
                    // Hold the row a moment, as a batch's read-model writes would.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    if won {
                        store.commit(tx).await.unwrap();
                    } else {
                        store.rollback(tx).await.unwrap();
                    }
                    (won, to)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            let (won, to) = racer.await.unwrap();
            if won {
                winners.push(to);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one advance wins");
        let now = store.checkpoint("race", partition).await.unwrap().position;
        assert_eq!(now, winners[0], "round {round}: the winner's position is stored");
    }
}

#[tokio::test]
async fn checkpoints_are_created_advanced_and_listed() {
    let Some(store) = common::fresh_store().await else { return };
    let p = Partition::new(0, 2).unwrap();
    let created = store.checkpoint("orders", p).await.unwrap();
    assert_eq!((created.position, created.last_error.clone()), (0, None));
    assert_eq!(store.checkpoint("orders", p).await.unwrap(), created, "created once");

    store.set_checkpoint_error("orders", p, Some("boom\0!")).await.unwrap();
    let failed = store.checkpoint("orders", p).await.unwrap();
    assert_eq!(failed.last_error.as_deref(), Some("boom\u{fffd}!"));
    assert_eq!(failed.position, 0);

    // A stale `from` changes nothing; the right one moves it and clears the error.
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_checkpoint_in(&mut tx, "orders", p, 5, 9).await.unwrap());
    assert!(store.advance_checkpoint_in(&mut tx, "orders", p, 0, 9).await.unwrap());
    store.commit(tx).await.unwrap();
    let moved = store.checkpoint("orders", p).await.unwrap();
    assert_eq!((moved.position, moved.last_error), (9, None));
    assert!(moved.updated_at >= created.updated_at);
    // Rolled back: not moved.
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_checkpoint_in(&mut tx, "orders", p, 9, 12).await.unwrap());
    store.rollback(tx).await.unwrap();
    assert_eq!(store.checkpoint("orders", p).await.unwrap().position, 9);
    // No checkpoint row: nothing to move.
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_checkpoint_in(&mut tx, "nobody", p, 0, 1).await.unwrap());
    store.rollback(tx).await.unwrap();

    store.set_checkpoint_error("audit", Partition::all(), Some("stopped")).await.unwrap();
    store.checkpoint("orders", Partition::new(1, 2).unwrap()).await.unwrap();
    store.checkpoint("orders", Partition::all()).await.unwrap();
    store.set_checkpoint_error("orders", p, None).await.unwrap();
    let listed: Vec<(String, String, Position, Option<String>)> = store
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.projection, c.partition.to_string(), c.position, c.last_error))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("audit".into(), "0/1".into(), 0, Some("stopped".into())),
            ("orders".into(), "0/1".into(), 0, None),
            ("orders".into(), "0/2".into(), 9, None),
            ("orders".into(), "1/2".into(), 0, None),
        ]
    );
    // Partition counts no backend stores are refused up front (Partition::MAX_COUNT).
    assert!(Partition::new(0, u32::MAX).is_err());
}

fn letter(projection: &str, position: Position, error: &str, attempts: u32) -> DeadLetter {
    DeadLetter {
        projection: projection.into(),
        partition: Partition::new(1, 2).unwrap(),
        position,
        event_id: Uuid::now_v7(),
        error: error.into(),
        attempts,
        recorded_at: Utc::now(),
    }
}

#[tokio::test]
async fn dead_letters_round_trip_and_reset_removes_them() {
    let Some(store) = common::fresh_store().await else { return };
    let (a3, a7, b3) =
        (letter("a", 3, "bad\0input", 3), letter("a", 7, "x", 1), letter("b", 3, "y", 2));
    let mut tx = store.begin().await.unwrap();
    for l in [&a7, &b3, &a3] {
        store.add_dead_letter_in(&mut tx, l).await.unwrap();
    }
    store.commit(tx).await.unwrap();
    let listed = store.dead_letters(None).await.unwrap();
    let keys: Vec<(String, Position)> =
        listed.iter().map(|l| (l.projection.clone(), l.position)).collect();
    assert_eq!(keys, vec![("a".into(), 3), ("a".into(), 7), ("b".into(), 3)]);
    let first = &listed[0];
    assert_eq!(
        (first.partition, first.event_id, first.error.as_str(), first.attempts),
        (a3.partition, a3.event_id, "bad\u{fffd}input", 3)
    );
    assert_eq!(store.dead_letters(Some("b")).await.unwrap().len(), 1);
    assert!(store.dead_letters(Some("c")).await.unwrap().is_empty());

    // Again at the same position: replaced.
    let again = letter("a", 7, "worse", 5);
    let mut tx = store.begin().await.unwrap();
    store.add_dead_letter_in(&mut tx, &again).await.unwrap();
    store.commit(tx).await.unwrap();
    let a = store.dead_letters(Some("a")).await.unwrap();
    assert_eq!((a[1].error.as_str(), a[1].attempts, a[1].event_id), ("worse", 5, again.event_id));
    assert_ne!(a7.event_id, again.event_id);

    // Rolled back: still there. Removed: gone, once.
    let mut tx = store.begin().await.unwrap();
    assert!(store.remove_dead_letter_in(&mut tx, "a", 7).await.unwrap());
    store.rollback(tx).await.unwrap();
    assert_eq!(store.dead_letters(Some("a")).await.unwrap().len(), 2);
    let mut tx = store.begin().await.unwrap();
    assert!(store.remove_dead_letter_in(&mut tx, "a", 7).await.unwrap());
    assert!(!store.remove_dead_letter_in(&mut tx, "a", 7).await.unwrap());
    store.commit(tx).await.unwrap();
    assert_eq!(store.dead_letters(Some("a")).await.unwrap().len(), 1);

    // Reset: the projection's checkpoints and dead letters go, others stay.
    let p = Partition::new(1, 2).unwrap();
    for name in ["a", "b"] {
        store.checkpoint(name, p).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(store.advance_checkpoint_in(&mut tx, name, p, 0, 10).await.unwrap());
        store.commit(tx).await.unwrap();
    }
    let mut tx = store.begin().await.unwrap();
    store.reset_checkpoints_in(&mut tx, "a").await.unwrap();
    store.commit(tx).await.unwrap();
    assert!(store.dead_letters(Some("a")).await.unwrap().is_empty());
    assert_eq!(store.dead_letters(Some("b")).await.unwrap().len(), 1);
    let names: Vec<String> =
        store.checkpoints().await.unwrap().into_iter().map(|c| c.projection).collect();
    assert_eq!(names, vec!["b".to_string()]);
    assert_eq!(store.checkpoint("a", p).await.unwrap().position, 0, "starts over");
    assert_eq!(store.checkpoint("b", p).await.unwrap().position, 10);
}

#[tokio::test]
async fn pending_counts_the_scoped_events_after_the_checkpoint() {
    let Some(store) = common::fresh_store().await else { return };
    let appended = varied_log(&store).await;
    let hashes = appended.expected();
    let log = store.read_all(1, 10_000).await.unwrap();
    let after = log[log.len() / 3].position;
    for scope in scopes() {
        for partition in std::iter::once(Partition::all()).chain(Partition::every(3)) {
            let expected: Vec<&RecordedEvent> = log
                .iter()
                .filter(|e| e.position > after && scope.matches(e))
                .filter(|e| partition.contains(hashes[&e.event_id] as u32))
                .collect();
            let pending = store.pending(&scope, partition, after).await.unwrap();
            assert_eq!(pending.events, expected.len() as u64, "{scope:?} {partition}");
            assert_eq!(pending.oldest, expected.iter().map(|e| e.created_at).min());
        }
    }
    let head = log.last().unwrap().position;
    assert_eq!(store.pending(&Scope::all(), Partition::all(), head).await.unwrap().events, 0);
}

#[tokio::test]
async fn pending_reports_the_oldest_event() {
    let Some(store) = common::fresh_store().await else { return };
    let at = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
    let events = [event("A").with_created_at(at(50)), event("A").with_created_at(at(10))];
    store.append(&new_stream(), ExpectedVersion::Any, &events).await.unwrap();
    let pending = store.pending(&Scope::all(), Partition::all(), 0).await.unwrap();
    assert_eq!((pending.events, pending.oldest), (2, Some(at(10))));
}

#[tokio::test]
async fn migrating_an_older_events_table_adds_the_column() {
    let Some(store) = common::fresh_store().await else { return };
    let schema = store.config().schema.clone();
    let old = [event("Old")];
    store.append(&new_stream(), ExpectedVersion::Any, &old).await.unwrap();
    // The table as it was before partition hashes, then the migration again.
    let drop = format!(
        "ALTER TABLE {schema}.events DROP COLUMN partition_hash; \
         DROP TABLE {schema}.projection_checkpoints, {schema}.projection_dead_letters"
    );
    sqlx::raw_sql(AssertSqlSafe(drop)).execute(store.pool()).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let stream = new_stream();
    let new = [event("New")];
    store.append(&stream, ExpectedVersion::Any, &new).await.unwrap();
    let stored = stored_hashes(&store).await;
    assert_eq!(stored[&old[0].event_id], 0, "events older than the column hash to 0");
    assert_eq!(stored[&new[0].event_id], i64::from(partition_hash(Some(&stream), &new[0])));
    store.checkpoint("p", Partition::all()).await.unwrap();
    // No default is left: a writer that does not know the column fails.
    let insert = format!(
        "INSERT INTO {schema}.events (global_position, event_id, event_type, payload) \
         VALUES (999999, gen_random_uuid(), 'X', '')"
    );
    assert!(sqlx::raw_sql(AssertSqlSafe(insert)).execute(store.pool()).await.is_err());
}

#[tokio::test]
async fn the_migration_names_the_configured_projection_tables() {
    let config = StoreConfig::default()
        .schema("shop")
        .and_then(|c| c.events_table("ledger"))
        .and_then(|c| c.checkpoints_table("progress"))
        .unwrap();
    let sql = pupsourcing_postgres::migration_sql(&config);
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "shop"."progress""#));
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "shop"."ledger_dead_letters""#));
    assert!(sql.contains("partition_hash    BIGINT NOT NULL,"));
}
