//! DCB conformance: reads by query, append conditions, idempotency, validation, and racing
//! conditional appends (see `shared/dcb-conformance.md`).

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{Error, ExpectedVersion, NewEvent, Position, ValidationError};
use rand::Rng;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::fixtures::{new_stream, stress_duration};

const ROUNDS: usize = 20;
const RACERS: usize = 8;

fn ev(event_type: &str, tags: &[&str]) -> NewEvent {
    NewEvent::new(event_type, b"{}".to_vec()).with_tags(tags.iter().copied())
}

fn types(q: &[&str]) -> Query {
    Query::from_items([QueryItem::types(q.iter().copied())])
}

fn tags(q: &[&str]) -> Query {
    Query::from_items([QueryItem::tags(q.iter().copied())])
}

async fn positions<S: DcbStore>(store: &S, query: &Query, options: ReadOptions) -> Vec<Position> {
    store.read(query, options).await.unwrap().events.iter().map(|e| e.position).collect()
}

fn assert_condition_failed(result: pupsourcing_core::Result<impl std::fmt::Debug>, case: &str) {
    match result {
        Err(Error::ConditionFailed { .. }) => {}
        other => panic!("{case}: expected ConditionFailed, got {other:?}"),
    }
}

/// An empty store: head 0, nothing read forwards or backwards.
pub async fn empty_store_reads<S: DcbStore>(store: S) {
    let read = store.read(&Query::all(), ReadOptions::new()).await.unwrap();
    assert_eq!((read.events.len(), read.head), (0, 0));
    let back = store.read(&Query::all(), ReadOptions::new().backwards()).await.unwrap();
    assert!(back.events.is_empty());
    // A token from an empty read is a valid `after`.
    let cond = AppendCondition::none_after(types(&["A"]), read.head);
    store.append_if(&[ev("A", &[])], Some(&cond)).await.unwrap();
}

/// Positions, `from`, `limit`, forwards and backwards, and the head beside every read.
pub async fn reads_with_options<S: DcbStore>(store: S) {
    let first = store.append_if(&[ev("A", &[])], None).await.unwrap();
    assert_eq!(first.positions, vec![1], "positions start at 1");
    let second = store.append_if(&[ev("B", &["x"]), ev("C", &["x", "y"])], None).await.unwrap();
    assert_eq!(second.positions, vec![2, 3]);
    assert_eq!(second.last_position(), 3);
    let all = Query::all();
    assert_eq!(positions(&store, &all, ReadOptions::new()).await, [1, 2, 3]);
    assert_eq!(positions(&store, &all, ReadOptions::new().backwards()).await, [3, 2, 1]);
    assert_eq!(positions(&store, &all, ReadOptions::new().from(2)).await, [2, 3]);
    assert_eq!(positions(&store, &all, ReadOptions::new().from(2).backwards()).await, [2, 1]);
    assert!(positions(&store, &all, ReadOptions::new().limit(0)).await.is_empty());
    assert_eq!(positions(&store, &all, ReadOptions::new().limit(1)).await, [1]);
    assert_eq!(positions(&store, &all, ReadOptions::new().limit(2)).await, [1, 2]);
    assert_eq!(positions(&store, &all, ReadOptions::new().backwards().limit(1)).await, [3]);
    let bounded = store.read(&all, ReadOptions::new().limit(1)).await.unwrap();
    assert_eq!(bounded.head, 3, "a bounded read still reports the true head");
    let none = store.read(&types(&["Nope"]), ReadOptions::new()).await.unwrap();
    assert_eq!((none.events.len(), none.head), (0, 3), "head even when nothing matched");
}

/// Type, tag, type+tag, AND of tags, OR of items (either order), with from/limit.
pub async fn query_matching<S: DcbStore>(store: S) {
    store.append_if(&[ev("A", &["t1"])], None).await.unwrap(); // 1
    store.append_if(&[ev("B", &["t1", "t2"])], None).await.unwrap(); // 2
    store.append_if(&[ev("A", &["t2"])], None).await.unwrap(); // 3
    store.append_if(&[ev("C", &[])], None).await.unwrap(); // 4
    store.append_if(&[ev("B", &["t3"])], None).await.unwrap(); // 5
    let r = ReadOptions::new;
    assert_eq!(positions(&store, &types(&["A"]), r()).await, [1, 3]);
    assert_eq!(positions(&store, &types(&["A", "C"]), r()).await, [1, 3, 4]);
    assert_eq!(positions(&store, &tags(&["t1"]), r()).await, [1, 2]);
    assert_eq!(positions(&store, &tags(&["t1", "t2"]), r()).await, [2]);
    let a_t2 = QueryItem::types(["A"]).with_tags(["t2"]);
    let b_t3 = QueryItem::types(["B"]).with_tags(["t3"]);
    assert_eq!(positions(&store, &Query::from_items([a_t2.clone()]), r()).await, [3]);
    let either = Query::from_items([b_t3.clone(), a_t2.clone()]);
    assert_eq!(positions(&store, &either, r()).await, [3, 5], "ascending whatever the item order");
    assert_eq!(positions(&store, &Query::from_items([a_t2, b_t3]), r()).await, [3, 5]);
    assert_eq!(positions(&store, &either, r().from(4)).await, [5]);
    assert_eq!(positions(&store, &either, r().limit(1)).await, [3]);
    assert_eq!(positions(&store, &either, r().backwards().limit(1)).await, [5]);
    let two_items = Query::from_items([QueryItem::tags(["t3"]), QueryItem::types(["C"])]);
    assert_eq!(positions(&store, &two_items, r()).await, [4, 5]);
    // An untagged event is found by type, never by tag; payloads are never inspected.
    assert_eq!(positions(&store, &types(&["C"]), r()).await, [4]);
    assert!(positions(&store, &tags(&["{}"]), r()).await.is_empty());
    let read = store.read(&tags(&["t3"]), r().from(1).limit(5)).await.unwrap();
    assert_eq!(read.head, 5);
}

/// Every failing condition case: typed error, nothing written.
pub async fn failing_conditions_write_nothing<S: DcbStore>(store: S) {
    store.append_if(&[ev("A", &["t1", "t2"])], None).await.unwrap(); // 1
    store.append_if(&[ev("B", &["t3"])], None).await.unwrap(); // 2
    let cases: Vec<(&str, AppendCondition)> = vec![
        ("all, no after", AppendCondition::none_match(Query::all())),
        ("all, after below head", AppendCondition::none_after(Query::all(), 1)),
        ("existing type", AppendCondition::none_match(types(&["A"]))),
        ("existing type after below it", AppendCondition::none_after(types(&["B"]), 1)),
        ("existing tag", AppendCondition::none_match(tags(&["t3"]))),
        ("existing tag after below it", AppendCondition::none_after(tags(&["t3"]), 1)),
        (
            "type and tag on one event",
            AppendCondition::none_match(Query::from_items([
                QueryItem::types(["A"]).with_tags(["t1"])
            ])),
        ),
        ("two tags on one event", AppendCondition::none_match(tags(&["t1", "t2"]))),
        (
            "tag B or C, one exists",
            AppendCondition::none_match(Query::from_items([
                QueryItem::tags(["zz"]),
                QueryItem::tags(["t2"]),
            ])),
        ),
        (
            "only the second item matches",
            AppendCondition::none_match(Query::from_items([
                QueryItem::types(["Nope"]),
                QueryItem::types(["B"]),
            ])),
        ),
    ];
    for (case, condition) in cases {
        let result = store.append_if(&[ev("New", &["t1"])], Some(&condition)).await;
        if let Err(Error::ConditionFailed { condition: got }) = &result {
            assert_eq!(**got, condition, "{case}: the error carries the condition");
        }
        assert_condition_failed(result, case);
    }
    assert_eq!(store.read(&Query::all(), ReadOptions::new()).await.unwrap().events.len(), 2);
}

/// Every passing condition case.
pub async fn passing_conditions<S: DcbStore>(store: S) {
    store.append_if(&[ev("A", &["t1"])], None).await.unwrap();
    let head = store.read(&Query::all(), ReadOptions::new()).await.unwrap().head;
    let cases = [
        AppendCondition::none_after(Query::all(), head),
        AppendCondition::none_after(types(&["A"]), head),
        AppendCondition::none_match(types(&["Unmatched"])),
        AppendCondition::none_match(tags(&["unmatched"])),
        AppendCondition::none_match(tags(&["t1", "unmatched"])),
        AppendCondition::none_after(tags(&["t1"]), 1),
    ];
    for condition in cases {
        let r = store.append_if(&[ev("Z", &["z"])], Some(&condition)).await;
        assert!(r.is_ok(), "{condition:?}: {r:?}");
    }
}

/// Re-appending stored ids returns the original positions, even when the condition now fails.
pub async fn idempotent_dcb_appends<S: DcbStore>(store: S) {
    let batch = [ev("Claimed", &["user:ada"]), ev("Welcomed", &["user:ada"])];
    let cond = AppendCondition::none_match(tags(&["user:ada"]));
    let first = store.append_if(&batch, Some(&cond)).await.unwrap();
    let again = store.append_if(&batch, Some(&cond)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.positions, first.positions);
    // Some ids stored: refused as a partial duplicate when the condition holds, and as the
    // failed condition when it does not, on every backend alike.
    let mixed = [batch[0].clone(), ev("Thanked", &["user:ada"])];
    let other = AppendCondition::none_match(tags(&["user:bob"]));
    assert!(
        matches!(
            store.append_if(&mixed, Some(&other)).await,
            Err(Error::PartialDuplicate { stored: 1, total: 2, .. })
        ),
        "a partial duplicate under a condition that holds"
    );
    assert_condition_failed(store.append_if(&mixed, Some(&cond)).await, "some ids stored");
    assert_eq!(store.read(&Query::all(), ReadOptions::new()).await.unwrap().events.len(), 2);
}

/// Bad input: typed errors, nothing written.
pub async fn dcb_validation<S: DcbStore>(store: S) {
    let v = |r: pupsourcing_core::Result<_>| match r {
        Err(Error::Validation(v)) => v,
        other => panic!("expected a validation error, got {other:?}"),
    };
    assert_eq!(v(store.append_if(&[], None).await), ValidationError::EmptyBatch);
    let empty_item = AppendCondition::none_match(Query::from_items([QueryItem::default()]));
    assert_eq!(
        v(store.append_if(&[ev("A", &[])], Some(&empty_item)).await),
        ValidationError::EmptyQueryItem
    );
    assert!(matches!(
        v(store.append_if(&[ev("A", &[""])], None).await),
        ValidationError::Empty { .. }
    ));
    assert!(matches!(
        v(store.append_if(&[ev("A", &[&"x".repeat(300)])], None).await),
        ValidationError::TooLong { .. }
    ));
    assert!(matches!(
        v(store.append_if(&[ev("A", &["d", "d"])], None).await),
        ValidationError::DuplicateTag(_)
    ));
    let big: Vec<_> = (0..1001).map(|_| ev("A", &[])).collect();
    assert!(matches!(v(store.append_if(&big, None).await), ValidationError::BatchTooLarge { .. }));
    assert!(matches!(
        store.read(&Query::from_items([QueryItem::default()]), ReadOptions::new()).await,
        Err(Error::Validation(ValidationError::EmptyQueryItem))
    ));
    assert_eq!(store.read(&Query::all(), ReadOptions::new()).await.unwrap().head, 0);
}

/// One log: a DCB type condition sees aggregate events, and DCB reads return them.
pub async fn aggregate_events_are_in_the_boundary<S: DcbStore>(store: S) {
    let stream = new_stream();
    store
        .append(&stream, ExpectedVersion::NoStream, &[ev("Opened", &["account:1"])])
        .await
        .unwrap();
    let read = store.read(&tags(&["account:1"]), ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.len(), 1);
    assert_eq!(read.events[0].stream.as_ref().map(|s| &s.0), Some(&stream));
    assert_condition_failed(
        store
            .append_if(&[ev("X", &[])], Some(&AppendCondition::none_match(types(&["Opened"]))))
            .await,
        "aggregate event",
    );
}

/// A streaming read yields everything in order, in pages, and ends.
pub async fn streaming_read<S: DcbStore>(store: S) {
    for i in 0..25 {
        store.append_if(&[ev(if i % 2 == 0 { "Even" } else { "Odd" }, &[])], None).await.unwrap();
    }
    let q = types(&["Even"]);
    let got: Vec<_> = store.read_stream_of(&q, 1, 4).map(|e| e.unwrap().position).collect().await;
    assert_eq!(got, (1..=25).step_by(2).collect::<Vec<_>>());
}

/// One racer: its events and its condition.
type Racer = (Vec<NewEvent>, Option<AppendCondition>);

/// Runs `racers` at once (one task each, released together); returns how many won. Errors other
/// than a failed condition fail the test.
async fn race<S: DcbStore>(store: &S, racers: Vec<Racer>) -> usize {
    race_on(racers.into_iter().map(|(events, condition)| (store.clone(), events, condition))).await
}

/// [`race`] where each racer appends through a store of its own (stores sharing one log).
pub(crate) async fn race_on<S: DcbStore>(
    racers: impl IntoIterator<Item = (S, Vec<NewEvent>, Option<AppendCondition>)>,
) -> usize {
    let racers: Vec<_> = racers.into_iter().collect();
    let barrier = Arc::new(Barrier::new(racers.len()));
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|(store, events, condition)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.append_if(&events, condition.as_ref()).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::ConditionFailed { .. }) => {}
            Err(other) => panic!("unexpected error in a race: {other}"),
        }
    }
    wins
}

fn fresh(name: &str) -> String {
    format!("{name}-{}", Uuid::now_v7().simple())
}

/// 8 racers on one boundary (same condition and `after`): exactly one wins, every round.
pub async fn one_boundary_one_winner<S: DcbStore>(store: S) {
    for _ in 0..ROUNDS {
        let course = fresh("course");
        let query = tags(&[&course]);
        let head = store.read(&query, ReadOptions::new()).await.unwrap().head;
        let racers = (0..RACERS)
            .map(|_| {
                (
                    vec![ev("Subscribed", &[&course])],
                    Some(AppendCondition::none_after(query.clone(), head)),
                )
            })
            .collect();
        assert_eq!(race(&store, racers).await, 1);
        assert_eq!(
            store.read(&query, ReadOptions::new()).await.unwrap().events.len(),
            1,
            "only the winner's event"
        );
    }
}

/// 8 racers on disjoint boundaries: all win, no false conflicts.
pub async fn disjoint_boundaries_all_win<S: DcbStore>(store: S) {
    for _ in 0..ROUNDS {
        let head = store.read(&Query::all(), ReadOptions::new().limit(0)).await.unwrap().head;
        let racers = (0..RACERS)
            .map(|_| {
                let t = fresh("user");
                (
                    vec![ev("Registered", &[&t])],
                    Some(AppendCondition::none_after(tags(&[&t]), head)),
                )
            })
            .collect();
        assert_eq!(race(&store, racers).await, RACERS);
    }
}

/// Overlapping but different conditions over an event matching both: never both win.
pub async fn overlapping_boundaries_never_both_win<S: DcbStore>(store: S) {
    for _ in 0..ROUNDS {
        let (t1, t2, a, b) = (fresh("T1"), fresh("T2"), fresh("a"), fresh("b"));
        let head = store.read(&Query::all(), ReadOptions::new().limit(0)).await.unwrap().head;
        let cond = |q: Query| Some(AppendCondition::none_after(q, head));
        let cases: Vec<(&str, Vec<Racer>)> = vec![
            (
                "type-only vs tag-only",
                vec![
                    (vec![ev(&t1, &[&a])], cond(types(&[&t1]))),
                    (vec![ev(&t1, &[&a])], cond(tags(&[&a]))),
                ],
            ),
            (
                "narrow vs wide type set",
                vec![
                    (vec![ev(&t2, &[])], cond(types(&[&t2]))),
                    (vec![ev(&t2, &[])], cond(types(&[&t1, &t2]))),
                ],
            ),
            (
                "one tag vs two tags",
                vec![
                    (vec![ev("E", &[&b, &a])], cond(tags(&[&b]))),
                    (vec![ev("E", &[&a, &b])], cond(tags(&[&a, &b]))),
                ],
            ),
        ];
        for (case, racers) in cases {
            let wins = race(&store, racers).await;
            assert_eq!(wins, 1, "{case}: exactly one of two overlapping conditions wins");
        }
        // A condition spanning two tags (either item) against a one-tag condition.
        let (c, d) = (fresh("c"), fresh("d"));
        let head = store.read(&Query::all(), ReadOptions::new().limit(0)).await.unwrap().head;
        let spanning =
            Query::from_items([QueryItem::tags([c.as_str()]), QueryItem::tags([d.as_str()])]);
        let racers = vec![
            (vec![ev("E", &[&d])], Some(AppendCondition::none_after(spanning, head))),
            (vec![ev("E", &[&d])], Some(AppendCondition::none_after(tags(&[&d]), head))),
        ];
        assert_eq!(race(&store, racers).await, 1, "spanning two tags");
    }
}

/// A condition without `after` over racing creates: exactly one wins.
pub async fn racing_creates_one_winner<S: DcbStore>(store: S) {
    for _ in 0..ROUNDS {
        let name = fresh("username");
        let racers = (0..RACERS)
            .map(|_| {
                (
                    vec![ev("UsernameClaimed", &[&name])],
                    Some(AppendCondition::none_match(tags(&[&name]))),
                )
            })
            .collect();
        assert_eq!(race(&store, racers).await, 1);
    }
}

/// Unconditional appends from many tasks all succeed.
pub async fn unconditional_appends_all_succeed<S: DcbStore>(store: S) {
    for _ in 0..ROUNDS {
        let tag = fresh("shared");
        let racers = (0..RACERS).map(|_| (vec![ev("Logged", &[&tag])], None)).collect();
        assert_eq!(race(&store, racers).await, RACERS);
    }
}

/// Many tasks read random boundaries and append under them for a while; afterwards, the log
/// alone proves that every appended event's condition held at its position.
pub async fn oracle_conditions_held<S: DcbStore>(store: S) {
    const TYPES: [&str; 3] = ["A", "B", "C"];
    const TAGS: [&str; 4] = ["t1", "t2", "t3", "t4"];
    fn random_query(rng: &mut impl Rng) -> Query {
        let item = || -> QueryItem { QueryItem::default() };
        let mut items = Vec::new();
        for _ in 0..rng.random_range(1..=2) {
            let mut i = item();
            match rng.random_range(0..3) {
                0 => i.types.push(TYPES[rng.random_range(0..3)].into()),
                1 => i.tags.push(TAGS[rng.random_range(0..4)].into()),
                _ => {
                    i.types.push(TYPES[rng.random_range(0..3)].into());
                    i.tags.push(TAGS[rng.random_range(0..4)].into());
                }
            }
            items.push(i);
        }
        Query::from_items(items)
    }
    let deadline = Instant::now() + stress_duration();
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut won = Vec::new();
                let mut conflicts = 0;
                while Instant::now() < deadline {
                    let (query, event) = {
                        let mut rng = rand::rng();
                        let tags: Vec<&str> =
                            TAGS.iter().copied().filter(|_| rng.random_bool(0.4)).collect();
                        (random_query(&mut rng), ev(TYPES[rng.random_range(0..3)], &tags))
                    };
                    let head = store
                        .read(&query, ReadOptions::new().backwards().limit(1))
                        .await
                        .unwrap()
                        .head;
                    let condition = AppendCondition::none_after(query, head);
                    match store.append_if(std::slice::from_ref(&event), Some(&condition)).await {
                        Ok(r) => won.push((r.positions[0], condition)),
                        Err(Error::ConditionFailed { .. }) => conflicts += 1,
                        Err(other) => panic!("oracle append failed: {other}"),
                    }
                }
                (won, conflicts)
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (w, c) = task.await.unwrap();
        won.extend(w);
        conflicts += c;
    }
    let log = store.read(&Query::all(), ReadOptions::new()).await.unwrap().events;
    for (position, condition) in &won {
        let after = condition.after.unwrap_or(0);
        let violation = log.iter().find(|e| {
            e.position > after
                && e.position < *position
                && condition.fail_if_events_match.matches(e)
        });
        assert!(
            violation.is_none(),
            "event at {position} was appended although {violation:?} matched {condition}"
        );
    }
    assert!(
        won.len() > 20 && conflicts > 0,
        "the race was real: {} appended, {conflicts} conflicts",
        won.len()
    );
    eprintln!("oracle: {} conditional appends verified, {conflicts} conflicts", won.len());
}

/// A handler claiming a username once, for the executor test.
struct Claim;

impl pupsourcing_core::dcb::CommandHandler for Claim {
    type Command = String;
    type Error = &'static str;
    type Handles = pupsourcing_core::dcb::Handle<bool>;

    fn command_type(&self, _: &String) -> String {
        "ClaimUsername".into()
    }

    fn model(
        &self,
        name: &String,
        model: &mut pupsourcing_core::dcb::DecisionModel,
    ) -> Self::Handles {
        model.add(pupsourcing_core::dcb::StateProjector::new(
            "claimed",
            tags(&[name]),
            false,
            |_, _| true,
        ))
    }

    fn decide(
        &self,
        name: &String,
        claimed: &Self::Handles,
        states: &pupsourcing_core::dcb::States,
    ) -> Result<Vec<NewEvent>, &'static str> {
        if *states.get(*claimed) {
            return Err("taken");
        }
        Ok(vec![ev("UsernameClaimed", &[name])])
    }
}

/// The command executor under a race: one claim wins; every loser's condition fails, the
/// executor retries, and the handler then refuses on fresh state.
pub async fn executor_retries_on_fresh_state<S: DcbStore>(store: S) {
    use pupsourcing_core::dcb::{CommandExecutor, ExecuteError};
    for _ in 0..5 {
        let name = fresh("name");
        let executor = CommandExecutor::new(store.clone()).max_attempts(3);
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let (executor, barrier, name) = (executor.clone(), barrier.clone(), name.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    executor.execute(&Claim, &name).await
                })
            })
            .collect();
        let (mut won, mut refused) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(outcome) => {
                    won += 1;
                    assert_eq!(outcome.positions.len(), 1);
                }
                Err(ExecuteError::Rejected("taken")) => refused += 1,
                Err(other) => panic!("unexpected executor outcome: {other:?}"),
            }
        }
        assert_eq!((won, refused), (1, RACERS - 1));
        assert_eq!(store.read(&tags(&[&name]), ReadOptions::new()).await.unwrap().events.len(), 1);
    }
}

/// Two decisions in one transaction: a read after the transaction's own append sees that event
/// (with a head at or above it), and a condition built from that read passes, however many
/// times. Other sessions see the events only once the transaction commits.
pub async fn transaction_sees_its_own_appends<S: DcbStore>(store: S) {
    let probe = fresh("probe");
    let query = tags(&[&probe]);
    let mut tx = store.begin().await.unwrap();
    let mut mine = Vec::new();
    for decision in 0..3 {
        let read = store.read_in(&mut tx, &query, ReadOptions::new()).await.unwrap();
        let seen: Vec<Position> = read.events.iter().map(|e| e.position).collect();
        assert_eq!(seen, mine, "decision {decision}: the transaction reads its own events");
        assert!(read.head >= mine.last().copied().unwrap_or(0), "head covers own events");
        let cond = AppendCondition::none_after(query.clone(), read.head);
        let appended = store
            .append_if_in(&mut tx, &[ev("Probed", &[&probe])], Some(&cond))
            .await
            .unwrap_or_else(|e| panic!("decision {decision}: own events fail the condition: {e}"));
        mine.extend(appended.positions);
    }
    // A condition in the same transaction still sees them, with `after` below them.
    let stale = AppendCondition::none_after(query.clone(), mine[0] - 1);
    assert_condition_failed(
        store.append_if_in(&mut tx, &[ev("Probed", &[&probe])], Some(&stale)).await,
        "own events below the head match",
    );
    store.commit(tx).await.unwrap();
    assert_eq!(positions(&store, &query, ReadOptions::new()).await, mine);
}

/// Writers read their own appends inside transactions held open for random times (20% roll
/// back) while a reader tails the global log: a read shows an own event exactly when its head
/// covers it (another writer in flight below it holds the head back, as for any reader), and the reader never skips a committed event, so a
/// head a transaction computed for itself (past its own in-flight events) never leaks to
/// other sessions.
pub async fn own_reads_never_open_gaps<S: DcbStore>(store: S) {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    const WRITERS: usize = 6;
    let deadline = Instant::now() + stress_duration();
    let writing = Arc::new(AtomicBool::new(true));
    let reader = crate::spawn_tail(store.clone(), writing.clone(), 50);
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut committed = Vec::new();
                let tag = fresh("own");
                while Instant::now() < deadline {
                    let (hold_ms, commit) = {
                        let mut rng = rand::rng();
                        (rng.random_range(0..8), rng.random_bool(0.8))
                    };
                    let event = ev("Owned", &[&tag]);
                    let id = event.event_id;
                    let mut tx = store.begin().await.unwrap();
                    let at = store.append_if_in(&mut tx, &[event], None).await.unwrap();
                    let read = store.read_in(&mut tx, &tags(&[&tag]), ReadOptions::new()).await;
                    // Another writer's marker below it may still hide the own event.
                    let read = read.unwrap();
                    let shown = read.events.iter().any(|e| e.event_id == id);
                    assert_eq!(shown, read.head >= at.positions[0], "own event iff below head");
                    tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
                    if commit {
                        store.commit(tx).await.unwrap();
                        committed.push(id);
                    }
                }
                committed
            })
        })
        .collect();
    let mut committed = HashSet::new();
    for writer in writers {
        committed.extend(writer.await.unwrap());
    }
    writing.store(false, Ordering::SeqCst);
    let seen: HashSet<Uuid> = reader.await.unwrap().into_iter().map(|(_, id)| id).collect();
    let missed = committed.difference(&seen).count();
    assert_eq!(missed, 0, "the tailing reader skipped {missed} of {} events", committed.len());
}

/// Writers append events tagged `hot` or `cold` in transactions they hold open for random
/// times and commit out of order (some roll back), while a reader tails the `hot` query: each
/// read continues after the previous read's head. The head of a query only waits for writers
/// that could add a matching event, so this checks that it never runs ahead of one: the reader
/// must see every committed `hot` event exactly once and never a rolled-back one.
pub async fn query_tails_never_skip_out_of_order_commits<S: DcbStore>(store: S) {
    query_tail(store, false).await;
}

/// [`query_tails_never_skip_out_of_order_commits`] while another task keeps asking for the
/// head of the whole log, so a store that caches it (PostgreSQL) answers reads below it
/// without the query's head whenever it can: such a read must still never return a head above
/// a matching event in flight, nor an event above the head it returns.
pub async fn query_tails_below_a_fresh_log_head_never_skip<S: DcbStore>(store: S) {
    query_tail(store, true).await;
}

async fn query_tail<S: DcbStore>(store: S, refresh_log_head: bool) {
    const WRITERS: usize = 8;
    let deadline = Instant::now() + stress_duration();
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let hot = format!("hot:{}", Uuid::now_v7());
    let query = tags(&[&hot]);

    let refresher = refresh_log_head.then(|| {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                store.head().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
    });

    let reader = {
        let (store, writing, query) = (store.clone(), writing.clone(), query.clone());
        tokio::spawn(async move {
            let mut seen: Vec<Uuid> = Vec::new();
            let mut after = 0;
            loop {
                let still_writing = writing.load(std::sync::atomic::Ordering::SeqCst);
                let read = store.read(&query, ReadOptions::new().after(after)).await.unwrap();
                let caught_up = read.events.is_empty();
                for e in &read.events {
                    assert!(e.position > after && e.position <= read.head, "outside the read");
                }
                seen.extend(read.events.iter().map(|e| e.event_id));
                after = after.max(read.head);
                if caught_up && !still_writing {
                    return seen;
                }
                if caught_up {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, hot) = (store.clone(), hot.clone());
            tokio::spawn(async move {
                let (mut committed, mut rolled_back) = (Vec::new(), Vec::new());
                while Instant::now() < deadline {
                    let (hold_ms, commit, is_hot) = {
                        let mut rng = rand::rng();
                        (rng.random_range(0..8), rng.random_bool(0.8), rng.random_bool(0.5))
                    };
                    let tag = if is_hot { hot.clone() } else { format!("cold:{w}") };
                    let event = ev("Tick", &[&tag]);
                    let mut tx = store.begin().await.unwrap();
                    store.append_if_in(&mut tx, std::slice::from_ref(&event), None).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
                    if commit {
                        store.commit(tx).await.unwrap();
                        if is_hot {
                            committed.push(event.event_id);
                        }
                    } else {
                        drop(tx);
                        rolled_back.push(event.event_id);
                    }
                }
                (committed, rolled_back)
            })
        })
        .collect();

    let (mut committed, mut rolled_back) = (Vec::new(), Vec::new());
    for writer in writers {
        let (c, r) = writer.await.unwrap();
        committed.extend(c);
        rolled_back.extend(r);
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    if let Some(refresher) = refresher {
        refresher.await.unwrap();
    }
    let seen = reader.await.unwrap();
    let unique: std::collections::HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an event was read twice");
    assert!(rolled_back.iter().all(|id| !unique.contains(id)), "a rolled-back event was read");
    let missed = committed.iter().filter(|id| !unique.contains(id)).count();
    assert_eq!(missed, 0, "the tail skipped {missed} of {} committed events", committed.len());
    assert_eq!(unique.len(), committed.len());
    assert!(committed.len() > 50, "the test ran long enough to mean something");
}
