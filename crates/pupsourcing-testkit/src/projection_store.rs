//! The backend half of projections ([`ProjectionStore`]) tested directly: the partition hash
//! stored by every append path, batches that hold exactly what `Scope::matches` and
//! `Partition::contains` select, checkpoints moved by compare-and-set (also raced), dead
//! letters, reset and pending. Instantiated with [`crate::projection_store_conformance!`]; a
//! backend provides the raw read of its stored hashes ([`StoredHashes`]) and a pooled
//! connection outside any transaction ([`PlainConnection`]), and may provide the two stores
//! that race (by default two handles on one store, [`two_handles`]).

use std::collections::HashMap;
use std::future::Future;
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use pupsourcing_core::dcb::{
    AppendCondition, CommandExecutor, CommandHandler, DcbStore, DecisionModel, Handle, Query,
    QueryItem, StateProjector, States,
};
use pupsourcing_core::projection::{
    DeadLetter, Partition, ProjectionStore, Scope, murmur3_32, partition_hash,
};
use pupsourcing_core::{
    Error, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId,
    ValidationError,
};
use uuid::Uuid;

/// Reads the stored partition hash of every event, by position, with the backend's raw SQL.
pub trait StoredHashes<S>: Fn(S) -> Self::Future {
    /// The read.
    type Future: Future<Output = HashMap<Position, i64>>;
}

impl<S, F, Fut> StoredHashes<S> for F
where
    F: Fn(S) -> Fut,
    Fut: Future<Output = HashMap<Position, i64>>,
{
    type Future = Fut;
}

/// Two handles on one store, for the race of server backends: their pooled connections race.
pub fn two_handles<S: Clone>(store: Option<S>) -> Option<(S, S)> {
    store.map(|store| (store.clone(), store))
}

/// A connection of the store's (writer) pool, outside any transaction.
pub trait PlainConnection<S: EventStore>: Fn(S) -> Self::Future {
    /// The acquire.
    type Future: Future<Output = Self::Connection>;
    /// The pooled connection.
    type Connection: DerefMut<Target = S::Connection>;
}

impl<S, F, Fut, C> PlainConnection<S> for F
where
    S: EventStore,
    F: Fn(S) -> Fut,
    Fut: Future<Output = C>,
    C: DerefMut<Target = S::Connection>,
{
    type Future = Fut;
    type Connection = C;
}

fn ev(event_type: &str, tags: &[&str]) -> NewEvent {
    NewEvent::new(event_type, b"{}".to_vec()).with_tags(tags.iter().copied())
}

/// Claims a name, keyed by the name: the command executor's append path.
struct Claim;

impl CommandHandler for Claim {
    type Command = String;
    type Error = &'static str;
    type Handles = Handle<bool>;

    fn command_type(&self, _: &String) -> String {
        "Claim".into()
    }

    fn model(&self, name: &String, model: &mut DecisionModel) -> Handle<bool> {
        let claimed = QueryItem::types(["Claimed"]).with_tags([format!("name:{name}")]);
        model.add(StateProjector::new("taken", Query::from_items([claimed]), false, |_, _| true))
    }

    fn decide(
        &self,
        name: &String,
        taken: &Handle<bool>,
        states: &States,
    ) -> Result<Vec<NewEvent>, &'static str> {
        if *states.get(*taken) {
            return Err("taken");
        }
        let claimed = ev("Claimed", &[]).with_tags([format!("name:{name}")]);
        Ok(vec![claimed.with_partition_key(name.clone()), ev("Audited", &[])])
    }
}

/// Every append path stores `partition_hash(stream, event)`: stream appends (a new stream,
/// then at an exact version; single events and batches; in a caller's transaction), explicit
/// partition keys, DCB appends with and without a condition (also in a caller's transaction),
/// and the command executor's recorded append.
pub async fn every_append_path_stores_the_partition_hash<S, H>(store: S, hashes: H)
where
    S: ProjectionStore + DcbStore,
    H: StoredHashes<S>,
{
    let mut expected: HashMap<Position, u32> = HashMap::new();
    let mut record = |positions: &[Position], stream: Option<&StreamId>, events: &[NewEvent]| {
        for (position, event) in positions.iter().zip(events) {
            expected.insert(*position, partition_hash(stream, event));
        }
    };
    let order = StreamId::new("Order", Uuid::now_v7());
    let first = [ev("Placed", &[])];
    let r = store.append(&order, ExpectedVersion::NoStream, &first).await.unwrap();
    record(&r.positions, Some(&order), &first);
    // "abc" hashes above 2^31: the column keeps the unsigned value.
    let batch = [ev("Paid", &["x"]), ev("Shipped", &[]).with_partition_key("abc")];
    let r = store.append(&order, ExpectedVersion::Exact(1), &batch).await.unwrap();
    record(&r.positions, Some(&order), &batch);
    let other = StreamId::new("User", Uuid::now_v7());
    let one = [ev("Renamed", &[])];
    let mut tx = store.begin().await.unwrap();
    let r = store.append_in(&mut tx, &other, ExpectedVersion::NoStream, &one).await.unwrap();
    store.commit(tx).await.unwrap();
    record(&r.positions, Some(&other), &one);
    let free = [ev("Noted", &["t"]), ev("Noted", &[]).with_partition_key("k")];
    let r = store.append_if(&free, None).await.unwrap();
    record(&r.positions, None, &free);
    let condition = AppendCondition::new(
        Query::from_items([QueryItem::types(["Guarded"])]),
        Some(store.head().await.unwrap()),
    );
    let guarded = [ev("Guarded", &["u"])];
    let r = store.append_if(&guarded, Some(&condition)).await.unwrap();
    record(&r.positions, None, &guarded);
    let mut tx = store.begin().await.unwrap();
    let keyed = [ev("Guarded", &["v"]).with_partition_key("order-42")];
    let r = store.append_if_in(&mut tx, &keyed, None).await.unwrap();
    store.commit(tx).await.unwrap();
    record(&r.positions, None, &keyed);
    let executor = CommandExecutor::new(store.clone());
    let outcome = executor.execute(&Claim, &"ada".into()).await.unwrap();
    let recorded = store.read_all(outcome.positions[0], 2).await.unwrap();
    let claimed = ev("Claimed", &[]).with_id(recorded[0].event_id).with_partition_key("ada");
    let audited = ev("Audited", &[]).with_id(recorded[1].event_id);
    record(&outcome.positions, None, &[claimed, audited]);

    let stored = hashes(store.clone()).await;
    let expected: HashMap<Position, i64> =
        expected.into_iter().map(|(p, h)| (p, i64::from(h))).collect();
    assert_eq!(stored, expected);
    // Spot checks against the hash's definition.
    assert_eq!(stored[&1], i64::from(murmur3_32(order.aggregate_id.as_bytes())));
    assert_eq!(stored[&1], stored[&2], "one aggregate, one hash");
    assert_eq!(stored[&3], 0xb3dd_93fa);
    assert_eq!(stored[&6], i64::from(murmur3_32(b"k")));
    assert_eq!(stored[&outcome.positions[0]], i64::from(murmur3_32(b"ada")));
}

/// A log of varied events, with the partition hash each must have, by position.
async fn varied_log<S: ProjectionStore + DcbStore>(store: &S) -> HashMap<Position, u32> {
    let mut hashes = HashMap::new();
    let contexts = [Some("sales"), Some("crm"), None];
    for i in 0..12usize {
        let kind = if i % 3 == 0 { "User" } else { "Order" };
        let stream = StreamId::new(kind, Uuid::now_v7());
        let region = if i % 2 == 0 { "region:eu" } else { "region:us" };
        let mut events = vec![
            ev("Placed", &[region]),
            ev("Paid", &[region, "vip"]),
            ev(if i % 4 == 0 { "Registered" } else { "Shipped" }, &[]),
        ];
        if let Some(context) = contexts[i % 3] {
            events = events.into_iter().map(|e| e.with_bounded_context(context)).collect();
        }
        if i % 5 == 0 {
            events[2] = events[2].clone().with_partition_key(format!("key-{i}"));
        }
        let r = store.append(&stream, ExpectedVersion::NoStream, &events).await.unwrap();
        for (position, event) in r.positions.iter().zip(&events) {
            hashes.insert(*position, partition_hash(Some(&stream), event));
        }
        let free = [
            ev("Noted", &[region, "vip"]).with_partition_key(format!("note-{i}")),
            ev(if i % 2 == 0 { "Placed" } else { "Noted" }, &[region])
                .with_bounded_context("sales"),
        ];
        let r = store.append_if(&free, None).await.unwrap();
        for (position, event) in r.positions.iter().zip(&free) {
            hashes.insert(*position, partition_hash(None, event));
        }
    }
    hashes
}

fn scopes() -> Vec<Scope> {
    vec![
        Scope::all(),
        Scope::all().query(Query::all()),
        Scope::all().aggregate_types(["Order"]),
        Scope::all().aggregate_types(["Order", "User"]).bounded_contexts(["sales", "crm"]),
        Scope::all().event_types(["Paid", "Registered"]),
        Scope::all().query(Query::from_items([
            QueryItem::types(["Placed"]).with_tags(["region:eu"]),
            QueryItem::tags(["vip", "region:us"]),
            QueryItem::types(["Registered"]),
        ])),
        Scope::all()
            .aggregate_types(["Order"])
            .event_types(["Placed", "Paid"])
            .query(Query::from_items([QueryItem::tags(["region:eu"])])),
        Scope::all().bounded_contexts(["sales"]).query(Query::from_items([
            QueryItem::types(["Noted", "Placed"]),
            QueryItem::types(["Paid"]).with_tags(["vip"]),
        ])),
    ]
}

/// A batch read holds exactly the events that `Scope::matches` and `Partition::contains`
/// select, in position order, whether read at once or page by page; partitions 0..3 of 4
/// partition the scope's events. A limit of 0 and an invalid scope are refused.
pub async fn batches_hold_exactly_the_scoped_events_of_their_partition<S>(store: S)
where
    S: ProjectionStore + DcbStore,
{
    let hashes = varied_log(&store).await;
    let log = store.read_all(1, 10_000).await.unwrap();
    let head = store.head().await.unwrap();
    assert_eq!(log.len(), hashes.len());
    let positions =
        |events: &[RecordedEvent]| events.iter().map(|e| e.position).collect::<Vec<_>>();
    for scope in scopes() {
        let in_scope: Vec<RecordedEvent> =
            log.iter().filter(|e| scope.matches(e)).cloned().collect();
        assert!(!in_scope.is_empty() && in_scope.len() < log.len() || scope.is_all(), "{scope:?}");
        let whole = store.read_batch(&scope, Partition::all(), 0, 10_000).await.unwrap();
        assert_eq!(whole.head, head);
        assert_eq!(whole.events, in_scope, "{scope:?}");
        let mut union = Vec::new();
        for partition in Partition::every(4) {
            let expected: Vec<RecordedEvent> = in_scope
                .iter()
                .filter(|e| partition.contains(hashes[&e.position]))
                .cloned()
                .collect();
            let batch = store.read_batch(&scope, partition, 0, 10_000).await.unwrap();
            assert_eq!(positions(&batch.events), positions(&expected), "{scope:?} {partition}");
            assert_eq!(batch.events, expected);
            if scope.is_all() {
                assert!(!expected.is_empty(), "partition {partition} holds events");
            }
            // Page by page from a position in the middle, as a processor reads.
            let mut after = 10;
            let mut paged = Vec::new();
            loop {
                let page = store.read_batch(&scope, partition, after, 3).await.unwrap();
                assert!(page.events.len() <= 3);
                paged.extend(page.events.iter().cloned());
                let end = page.end(3);
                if end == after {
                    break;
                }
                after = end;
            }
            let tail: Vec<_> = expected.iter().filter(|e| e.position > 10).cloned().collect();
            assert_eq!(paged, tail, "{scope:?} {partition} paged");
            // Pending counts the same events, and finds the oldest.
            let pending = store.pending(&scope, partition, 10).await.unwrap();
            assert_eq!(pending.events, tail.len() as u64, "{scope:?} {partition} pending");
            assert_eq!(pending.oldest, tail.iter().map(|e| e.created_at).min());
            union.extend(batch.events);
        }
        union.sort_by_key(|e| e.position);
        assert_eq!(union, in_scope, "partitions 0..3 of 4 partition {scope:?}");
    }
    let past = store.read_batch(&Scope::all(), Partition::all(), head, 10).await.unwrap();
    assert!(past.events.is_empty() && past.head == head);
    assert_eq!(store.pending(&Scope::all(), Partition::all(), head).await.unwrap().events, 0);
    let zero = store.read_batch(&Scope::all(), Partition::all(), 0, 0).await;
    assert!(matches!(zero, Err(Error::Validation(ValidationError::OutOfRange { .. }))), "{zero:?}");
    let bad = Scope::all().event_types([""]);
    assert!(store.read_batch(&bad, Partition::all(), 0, 10).await.is_err());
}

/// A query of as many items as the limits allow, and of many types, reads (and counts as
/// pending) exactly what `Scope::matches` selects. The store must allow
/// `pupsourcing_core::Limits::CEILING`.
pub async fn batches_of_a_query_of_many_items<S: ProjectionStore + DcbStore>(store: S) {
    let limits = pupsourcing_core::Limits::CEILING;
    store.append_if(&[ev("A", &["t7"]), ev("B", &["t900"]), ev("C", &[])], None).await.unwrap();
    let items = (0..limits.max_query_items).map(|i| {
        if i % 2 == 0 {
            QueryItem::tags([format!("t{i}")])
        } else {
            QueryItem::types([format!("T{i}"), "B".into()]).with_tags([format!("t{i}")])
        }
    });
    let scope = Scope::all().query(Query::from_items(items));
    let batch = store.read_batch(&scope, Partition::all(), 0, 10).await.unwrap();
    let positions: Vec<_> = batch.events.iter().map(|e| e.position).collect();
    // t7 is on an item of types T7 and B, which A is not; t900 is on an item of tags only.
    assert_eq!(positions, [2]);
    let log = store.read_all(1, 10).await.unwrap();
    assert_eq!(batch.events, log.into_iter().filter(|e| scope.matches(e)).collect::<Vec<_>>());
    let pending = store.pending(&scope, Partition::all(), 0).await.unwrap();
    assert_eq!(pending.events, 1);
}

/// A checkpoint is created at 0, read back unchanged, and moves only by compare-and-set in
/// the caller's transaction; errors are stored and cleared; the listing is ordered.
pub async fn checkpoints_advance_by_compare_and_set<S: ProjectionStore>(store: S) {
    let part = Partition::new(1, 4).unwrap();
    let created = store.checkpoint("orders", part).await.unwrap();
    assert_eq!(
        (created.position, created.partition, created.last_error.as_deref()),
        (0, part, None)
    );
    assert_eq!(created.projection, "orders");
    assert!((Utc::now() - created.updated_at).num_seconds().abs() < 60);
    assert_eq!(store.checkpoint("orders", part).await.unwrap(), created, "not recreated");
    let advance = async |from, to| {
        let mut tx = store.begin().await.unwrap();
        let moved = store.advance_checkpoint_in(&mut tx, "orders", part, from, to).await.unwrap();
        store.commit(tx).await.unwrap();
        moved
    };
    assert!(advance(0, 5).await);
    assert!(!advance(0, 7).await, "the second advance from 0 finds it moved");
    assert_eq!(store.checkpoint("orders", part).await.unwrap().position, 5);
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_checkpoint_in(&mut tx, "orders", part, 5, 9).await.unwrap());
    store.rollback(tx).await.unwrap();
    assert_eq!(store.checkpoint("orders", part).await.unwrap().position, 5, "rolled back");
    // A negative position is refused before the database, alike on every backend, and the
    // caller's transaction stays usable (on PostgreSQL a refused statement would abort it).
    let mut tx = store.begin().await.unwrap();
    let negative = store.advance_checkpoint_in(&mut tx, "orders", part, 5, -1).await;
    assert!(matches!(negative, Err(Error::Validation(ValidationError::OutOfRange { .. }))));
    assert!(store.advance_checkpoint_in(&mut tx, "orders", part, 5, 5).await.unwrap());
    store.commit(tx).await.unwrap();
    // Another partition count is another checkpoint; a missing one never advances.
    let other = Partition::new(1, 2).unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(!store.advance_checkpoint_in(&mut tx, "orders", other, 0, 3).await.unwrap());
    store.commit(tx).await.unwrap();
    store.set_checkpoint_error("orders", part, Some("boom")).await.unwrap();
    assert_eq!(store.checkpoint("orders", part).await.unwrap().last_error.as_deref(), Some("boom"));
    assert!(advance(5, 6).await);
    let after = store.checkpoint("orders", part).await.unwrap();
    assert!(after.updated_at >= created.updated_at);
    assert_eq!((after.position, after.last_error), (6, None));
    store.set_checkpoint_error("orders", part, Some("again\0")).await.unwrap();
    let stored = store.checkpoint("orders", part).await.unwrap().last_error;
    assert_eq!(stored.as_deref(), Some("again\u{fffd}"), "NUL stored as U+FFFD");
    store.set_checkpoint_error("orders", part, None).await.unwrap();
    assert_eq!(store.checkpoint("orders", part).await.unwrap().last_error, None);
    store.set_checkpoint_error("billing", Partition::all(), Some("down")).await.unwrap();
    // Listed by projection, then partition count, then key.
    let (first_of_2, first_of_4) = (Partition::new(0, 2).unwrap(), Partition::new(0, 4).unwrap());
    for partition in [first_of_4, other, first_of_2] {
        store.checkpoint("orders", partition).await.unwrap();
    }
    let all = store.checkpoints().await.unwrap();
    let keys: Vec<_> = all
        .iter()
        .map(|c| (c.projection.as_str(), c.partition, c.position, c.last_error.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [
            ("billing", Partition::all(), 0, Some("down")),
            ("orders", first_of_2, 0, None),
            ("orders", other, 0, None),
            ("orders", first_of_4, 0, None),
            ("orders", part, 6, None),
        ]
    );
    assert!(Partition::new(0, u32::MAX).is_err(), "counts no backend stores are refused");
    let empty = store.checkpoint("", part).await;
    assert!(matches!(empty, Err(Error::Validation(ValidationError::Empty { .. }))), "{empty:?}");
}

/// How many rounds [`concurrent_advances_from_one_position_have_one_winner`] races.
pub const ADVANCE_ROUNDS: usize = 50;

/// Two processors of one partition (one on each racer store) advance from the same position
/// at once, to different positions, each in a transaction of its own held a little as a
/// batch's read-model writes would: exactly one wins, every round, and its position is
/// stored. (Both start at a barrier before `begin`: on SQLite `begin` takes the write lock.)
///
/// `racers` are two stores on one fresh database (`None` skips): two handles on one store
/// for server backends; on SQLite two stores on one file, because a store has a single writer
/// connection and racers sharing it would only queue for it.
pub async fn concurrent_advances_from_one_position_have_one_winner<S: ProjectionStore>(
    racers: Option<(S, S)>,
) {
    let Some((first, second)) = racers else { return };
    let part = Partition::new(2, 3).unwrap();
    first.checkpoint("race", part).await.unwrap();
    for round in 0..ADVANCE_ROUNDS {
        let from = second.checkpoint("race", part).await.unwrap().position;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = [(first.clone(), 1), (second.clone(), 2)]
            .into_iter()
            .map(|(store, step)| {
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut tx = store.begin().await.unwrap();
                    let to = from + step;
                    let won =
                        store.advance_checkpoint_in(&mut tx, "race", part, from, to).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    if won {
                        store.commit(tx).await.unwrap();
                    } else {
                        store.rollback(tx).await.unwrap();
                    }
                    won.then_some(to)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            winners.extend(task.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one advance wins");
        let now = first.checkpoint("race", part).await.unwrap().position;
        assert_eq!(now, winners[0], "round {round}: the winner's position is stored");
    }
}

fn letter(projection: &str, position: Position, attempts: u32) -> DeadLetter {
    DeadLetter {
        projection: projection.into(),
        partition: Partition::new(position as u32 % 2, 2).unwrap(),
        position,
        event_id: Uuid::now_v7(),
        error: format!("failed at {position}"),
        attempts,
        recorded_at: DateTime::<Utc>::MIN_UTC,
    }
}

/// Ignores `recorded_at`, which the store sets.
fn without_time(letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    letters
        .into_iter()
        .map(|l| {
            assert!((Utc::now() - l.recorded_at).num_seconds().abs() < 60, "{l:?}");
            DeadLetter { recorded_at: DateTime::<Utc>::MIN_UTC, ..l }
        })
        .collect()
}

/// Dead letters are stored in the caller's transaction, replaced at the same position, listed
/// by projection and position, and removed one by one.
pub async fn dead_letters_round_trip<S: ProjectionStore>(store: S) {
    let (p3, p1, q2) = (letter("p", 3, 1), letter("p", 1, 3), letter("q", 2, 2));
    let mut tx = store.begin().await.unwrap();
    for l in [&p3, &p1, &q2] {
        store.add_dead_letter_in(&mut tx, l).await.unwrap();
    }
    store.commit(tx).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    store.add_dead_letter_in(&mut tx, &letter("p", 7, 1)).await.unwrap();
    store.rollback(tx).await.unwrap();
    assert_eq!(
        without_time(store.dead_letters(Some("p")).await.unwrap()),
        [p1.clone(), p3.clone()]
    );
    assert_eq!(without_time(store.dead_letters(None).await.unwrap()), [p1.clone(), p3, q2.clone()]);
    assert!(store.dead_letters(Some("none")).await.unwrap().is_empty());
    let replaced = DeadLetter { error: "again".into(), attempts: 5, ..letter("p", 3, 0) };
    let mut tx = store.begin().await.unwrap();
    store.add_dead_letter_in(&mut tx, &replaced).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(without_time(store.dead_letters(Some("p")).await.unwrap()), [p1, replaced]);
    let mut tx = store.begin().await.unwrap();
    assert!(store.remove_dead_letter_in(&mut tx, "p", 3).await.unwrap());
    store.rollback(tx).await.unwrap();
    assert_eq!(store.dead_letters(Some("p")).await.unwrap().len(), 2, "removal rolled back");
    let mut tx = store.begin().await.unwrap();
    assert!(store.remove_dead_letter_in(&mut tx, "p", 3).await.unwrap());
    assert!(!store.remove_dead_letter_in(&mut tx, "p", 3).await.unwrap());
    assert!(!store.remove_dead_letter_in(&mut tx, "q", 1).await.unwrap());
    store.commit(tx).await.unwrap();
    let left: Vec<_> = store.dead_letters(None).await.unwrap().iter().map(|l| l.position).collect();
    assert_eq!(left, [1, 2]);
    let nul = DeadLetter { error: "bad\0input".into(), ..letter("r", 4, 1) };
    let mut tx = store.begin().await.unwrap();
    store.add_dead_letter_in(&mut tx, &nul).await.unwrap();
    store.commit(tx).await.unwrap();
    let stored = store.dead_letters(Some("r")).await.unwrap().remove(0).error;
    assert_eq!(stored, "bad\u{fffd}input", "NUL stored as U+FFFD");
}

/// A reset (in the caller's transaction: rolled back with it) removes the projection's
/// checkpoints and dead letters, and nothing of others.
pub async fn reset_removes_one_projections_checkpoints_and_dead_letters<S: ProjectionStore>(
    store: S,
) {
    for partition in Partition::every(2) {
        store.checkpoint("p", partition).await.unwrap();
    }
    store.checkpoint("q", Partition::all()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(store.advance_checkpoint_in(&mut tx, "q", Partition::all(), 0, 10).await.unwrap());
    for l in [letter("p", 1, 1), letter("p", 2, 1), letter("q", 1, 1)] {
        store.add_dead_letter_in(&mut tx, &l).await.unwrap();
    }
    store.commit(tx).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    store.reset_checkpoints_in(&mut tx, "p").await.unwrap();
    store.rollback(tx).await.unwrap();
    assert_eq!(store.checkpoints().await.unwrap().len(), 3, "rolled back");
    let mut tx = store.begin().await.unwrap();
    store.reset_checkpoints_in(&mut tx, "p").await.unwrap();
    store.commit(tx).await.unwrap();
    let checkpoints = store.checkpoints().await.unwrap();
    assert_eq!(checkpoints.into_iter().map(|c| c.projection).collect::<Vec<_>>(), ["q"]);
    let letters = store.dead_letters(None).await.unwrap();
    assert_eq!(letters.into_iter().map(|l| l.projection).collect::<Vec<_>>(), ["q"]);
    assert_eq!(store.checkpoint("q", Partition::all()).await.unwrap().position, 10, "kept");
    assert_eq!(store.checkpoint("p", Partition::all()).await.unwrap().position, 0);
}

/// `reset_checkpoints_in` on a pooled connection outside any transaction runs in a
/// transaction of its own, which commits.
pub async fn a_reset_outside_a_transaction_commits<S, C>(store: S, connection: C)
where
    S: ProjectionStore,
    C: PlainConnection<S>,
{
    store.checkpoint("p", Partition::all()).await.unwrap();
    store.checkpoint("q", Partition::all()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    store.add_dead_letter_in(&mut tx, &letter("p", 1, 1)).await.unwrap();
    store.commit(tx).await.unwrap();
    let mut conn = connection(store.clone()).await;
    store.reset_checkpoints_in(&mut conn, "p").await.unwrap();
    drop(conn);
    let left: Vec<String> =
        store.checkpoints().await.unwrap().into_iter().map(|c| c.projection).collect();
    assert_eq!(left, ["q"]);
    assert!(store.dead_letters(None).await.unwrap().is_empty());
}

/// Pending counts a partition's in-scope events after a position and finds the oldest's
/// `created_at` (not the first one's).
pub async fn pending_counts_in_scope_partition_events<S: ProjectionStore + DcbStore>(store: S) {
    let at = |secs: i64| Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap();
    let mut hashes = HashMap::new();
    for (i, secs) in [50, 10, 40, 30, 20, 60].into_iter().enumerate() {
        let mut event =
            ev(if i % 2 == 0 { "A" } else { "B" }, &[]).with_partition_key(format!("k{i}"));
        event.created_at = at(secs);
        let r = store.append_if(std::slice::from_ref(&event), None).await.unwrap();
        hashes.insert(r.positions[0], partition_hash(None, &event));
    }
    let log = store.read_all(1, 100).await.unwrap();
    let scope = Scope::all().event_types(["A"]);
    for after in [0, 2, 6] {
        for partition in Partition::every(2).chain([Partition::all()]) {
            let expected: Vec<_> = log
                .iter()
                .filter(|e| e.position > after && scope.matches(e))
                .filter(|e| partition.contains(hashes[&e.position]))
                .collect();
            let pending = store.pending(&scope, partition, after).await.unwrap();
            assert_eq!(pending.events, expected.len() as u64, "after {after}, {partition}");
            assert_eq!(pending.oldest, expected.iter().map(|e| e.created_at).min());
        }
    }
    let all = store.pending(&scope, Partition::all(), 0).await.unwrap();
    assert_eq!((all.events, all.oldest), (3, Some(at(20))));
}
