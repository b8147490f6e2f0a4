//! The command executor's boundary cache (`CommandExecutor::cache_boundaries`): a decision on
//! cached events is the one a fresh read would give, a stale cache never lets a decision
//! through, and refusals are never made on cached state alone; a command declared to start its
//! boundary is decided without a read, and never on a boundary that has events.

use std::convert::Infallible;

use pupsourcing_core::NewEvent;
use pupsourcing_core::dcb::{
    CommandExecutor, CommandHandler, CommandOutcome, DcbStore, DecisionModel, ExecuteError, Handle,
    Query, QueryItem, ReadOptions, StateProjector, States,
};
use uuid::Uuid;

fn boundary(tag: &str) -> Query {
    Query::from_items([QueryItem::tags([tag])])
}

fn event(event_type: &str, tag: &str, value: i64) -> NewEvent {
    NewEvent::json(event_type, &serde_json::json!({ "value": value }))
        .expect("a JSON object serializes")
        .with_tags([tag.to_string()])
}

fn value(event: &pupsourcing_core::RecordedEvent) -> i64 {
    event.json::<serde_json::Value>().unwrap()["value"].as_i64().unwrap()
}

/// Appends the next number of a boundary: the state is how many numbers it holds. With
/// `new`, every command is (wrongly) declared to start its boundary.
struct Next {
    tag: String,
    new: bool,
}

impl CommandHandler for Next {
    type Command = ();
    type Error = Infallible;
    type Handles = Handle<i64>;

    fn command_type(&self, _: &()) -> String {
        "Next".into()
    }

    fn model(&self, _: &(), model: &mut DecisionModel) -> Handle<i64> {
        model.add(StateProjector::new("count", boundary(&self.tag), 0, |n, _| n + 1))
    }

    fn decide(
        &self,
        _: &(),
        count: &Handle<i64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, Infallible> {
        Ok(vec![event("Numbered", &self.tag, states.get(*count) + 1)])
    }

    fn expects_new_boundary(&self, _: &()) -> bool {
        self.new
    }
}

async fn numbers<S: DcbStore>(store: &S, tag: &str) -> Vec<i64> {
    let read = store.read(&boundary(tag), ReadOptions::new()).await.unwrap();
    read.events.iter().map(value).collect()
}

/// Numbers a boundary from executors with caches of their own (as separate processes would
/// have) and without: sequentially, a warm cache decides in one attempt and a cache made stale
/// by another executor costs exactly one failed attempt; concurrently, the numbers still come
/// out 1, 2, 3, ... with no repeat. A cache missing its own appends, or a decision on cached
/// events appended without its condition, repeats numbers.
pub async fn cached_decisions_number_without_repeats<S: DcbStore>(store: S) {
    let tag = format!("counter:{}", Uuid::new_v4());
    let next = Next { tag: tag.clone(), new: false };
    let a = CommandExecutor::new(store.clone()).cache_boundaries(8);
    let b = CommandExecutor::new(store.clone()).cache_boundaries(8).record_commands(false);
    let plain = CommandExecutor::new(store.clone()).cache_boundaries(0);
    let attempts = |outcome: Result<_, ExecuteError<Infallible>>| match outcome {
        Ok(pupsourcing_core::dcb::CommandOutcome { attempts, .. }) => attempts,
        Err(e) => panic!("the executor failed: {e}"),
    };
    for i in 0..5 {
        assert_eq!(attempts(a.execute(&next, &()).await), 1, "command {i} of a lone executor");
    }
    assert_eq!(attempts(b.execute(&next, &()).await), 1, "a cold cache reads");
    assert_eq!(attempts(a.execute(&next, &()).await), 2, "a stale cache fails once, then reads");
    assert_eq!(attempts(a.execute(&next, &()).await), 1, "warm again");
    assert_eq!(attempts(plain.execute(&next, &()).await), 1);
    // A new executor caches by default: its second command decides on its cache, which the
    // uncached executor's command in between made stale.
    let default = CommandExecutor::new(store.clone());
    assert_eq!(attempts(default.execute(&next, &()).await), 1, "a cold cache reads");
    assert_eq!(attempts(plain.execute(&next, &()).await), 1);
    assert_eq!(attempts(default.execute(&next, &()).await), 2, "the default executor caches");
    assert_eq!(numbers(&store, &tag).await, (1..=12).collect::<Vec<_>>());

    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let executor = if i % 2 == 0 { a.clone() } else { b.clone() }.max_attempts(50);
            let next = Next { tag: tag.clone(), new: false };
            tokio::spawn(async move {
                for _ in 0..8 {
                    executor.execute(&next, &()).await.expect("fifty attempts suffice");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(numbers(&store, &tag).await, (1..=60).collect::<Vec<_>>());
}

/// An account: deposits and withdrawals of one tag.
struct Account {
    tag: String,
}

/// What to do with an [`Account`].
#[derive(serde::Serialize)]
enum Order {
    Deposit(i64),
    /// Refused when the balance is lower.
    Withdraw(i64),
    /// Withdraws the whole balance; nothing when it is zero.
    Empty,
}

impl CommandHandler for Account {
    type Command = Order;
    type Error = &'static str;
    type Handles = Handle<i64>;

    fn command_type(&self, _: &Order) -> String {
        "Account".into()
    }

    fn model(&self, _: &Order, model: &mut DecisionModel) -> Handle<i64> {
        let balance = |b: i64, e: &pupsourcing_core::RecordedEvent| match e.event_type.as_str() {
            "Deposited" => b + value(e),
            _ => b - value(e),
        };
        model.add(StateProjector::new("balance", boundary(&self.tag), 0, balance))
    }

    fn decide(
        &self,
        order: &Order,
        h: &Handle<i64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, &'static str> {
        let balance = *states.get(*h);
        match *order {
            Order::Deposit(n) => Ok(vec![event("Deposited", &self.tag, n)]),
            Order::Withdraw(n) if n > balance => Err("insufficient funds"),
            Order::Withdraw(n) => Ok(vec![event("Withdrawn", &self.tag, n)]),
            Order::Empty if balance == 0 => Ok(Vec::new()),
            Order::Empty => Ok(vec![event("Withdrawn", &self.tag, balance)]),
        }
    }
}

/// A refusal, or a decision to append nothing, made on cached state that another writer has
/// since changed would be wrong without any failed condition to tell: the executor makes both
/// again on a fresh read.
pub async fn cached_refusals_are_made_again_on_fresh_state<S: DcbStore>(store: S) {
    let account = Account { tag: format!("account:{}", Uuid::new_v4()) };
    let cached = CommandExecutor::new(store.clone()).cache_boundaries(8);
    let other = CommandExecutor::new(store.clone());
    let run = |executor: &CommandExecutor<S>, order: Order| {
        let (executor, account) = (executor.clone(), &account);
        async move { executor.execute(account, &order).await }
    };
    run(&cached, Order::Deposit(10)).await.unwrap();
    run(&cached, Order::Withdraw(10)).await.unwrap();
    // The cache now says 0; another writer deposits 5.
    run(&other, Order::Deposit(5)).await.unwrap();
    let withdrawn = run(&cached, Order::Withdraw(5)).await;
    assert!(withdrawn.is_ok(), "a refusal on stale cached state: {withdrawn:?}");
    run(&other, Order::Deposit(7)).await.unwrap();
    let emptied = run(&cached, Order::Empty).await.unwrap();
    assert_eq!(emptied.positions.len(), 1, "nothing to withdraw, decided on stale cached state");
    let refused = run(&cached, Order::Withdraw(1)).await;
    assert!(matches!(refused, Err(ExecuteError::Rejected("insufficient funds"))), "{refused:?}");
}

/// Remembers the events each decision saw, and decides the events it is given.
struct Witness {
    query: Query,
    seen: std::sync::Mutex<Vec<Vec<pupsourcing_core::RecordedEvent>>>,
    decide: std::sync::Mutex<Vec<NewEvent>>,
}

impl Witness {
    fn new(query: Query) -> Self {
        Self { query, seen: Default::default(), decide: Default::default() }
    }

    fn will_decide(&self, events: Vec<NewEvent>) {
        *self.decide.lock().unwrap() = events;
    }

    fn seen(&self) -> Vec<Vec<pupsourcing_core::RecordedEvent>> {
        self.seen.lock().unwrap().clone()
    }
}

impl CommandHandler for Witness {
    type Command = ();
    type Error = Infallible;
    type Handles = Handle<Vec<pupsourcing_core::RecordedEvent>>;

    fn command_type(&self, _: &()) -> String {
        "Witness".into()
    }

    fn model(&self, _: &(), model: &mut DecisionModel) -> Self::Handles {
        let keep = |mut all: Vec<_>, e: &pupsourcing_core::RecordedEvent| {
            all.push(e.clone());
            all
        };
        model.add(StateProjector::new("events", self.query.clone(), Vec::new(), keep))
    }

    fn decide(
        &self,
        _: &(),
        h: &Self::Handles,
        states: &States,
    ) -> Result<Vec<NewEvent>, Infallible> {
        self.seen.lock().unwrap().push(states.get(*h).clone());
        Ok(self.decide.lock().unwrap().clone())
    }
}

/// Events whose every field a store might alter on the way in or out: created_at with
/// nanoseconds before 1970 and after 2000, metadata of every JSON kind (a JSON `null` too),
/// unsorted tags, a bounded context, an event version, the three ids.
fn awkward_events(tag: &str) -> Vec<NewEvent> {
    use chrono::TimeZone;
    let metadata = serde_json::json!({
        "z": 1, "a": [0.1, 1e300, -0.0, 18446744073709551615u64, -9223372036854775808i64],
        "s": "é \u{1} \" \\ \u{2028}", "n": null, "o": { "t": true, "e": {} },
    });
    let mut first = NewEvent::new("Awkward", vec![0, 255, 10])
        .with_tags([tag.to_string(), "z:9".into(), "a:1".into()])
        .with_bounded_context("ctx")
        .with_event_version(7)
        .with_metadata(metadata)
        .with_trace_id(Uuid::new_v4())
        .with_correlation_id(Uuid::new_v4())
        .with_causation_id(Uuid::new_v4());
    first.created_at = chrono::Utc.timestamp_opt(-1, 999_999_999).unwrap();
    let outside = NewEvent::new("Outside", Vec::new()).with_tags(["elsewhere:1"]);
    let mut second = NewEvent::new("Awkward", Vec::new())
        .with_tags([tag.to_string()])
        .with_metadata(serde_json::Value::Null);
    second.created_at = chrono::Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
    vec![first, outside, second]
}

/// The events a decision sees on a cached boundary are exactly those a read returns (every
/// field), for events the executor appended itself in multi-event and single-event decisions,
/// with and without command records: a handler cannot decide differently on cached state.
/// The cached decision is told apart from a read by an event appended behind the cache's back:
/// it does not see that one, fails its condition, and decides again on a read.
pub async fn cached_events_are_what_a_read_returns<S: DcbStore>(store: S) {
    for record in [true, false] {
        let tag = format!("witness:{}", Uuid::new_v4());
        let witness = Witness::new(boundary(&tag));
        let executor =
            CommandExecutor::new(store.clone()).cache_boundaries(4).record_commands(record);
        witness.will_decide(awkward_events(&tag));
        executor.execute(&witness, &()).await.unwrap();
        let single = awkward_events(&tag).remove(0);
        witness.will_decide(vec![single]);
        assert_eq!(executor.execute(&witness, &()).await.unwrap().attempts, 1);
        // Behind the cache's back: the next decision on cached state misses it.
        store.append_if(&[event("Behind", &tag, 0)], None).await.unwrap();
        witness.will_decide(vec![event("Last", &tag, 0)]);
        assert_eq!(executor.execute(&witness, &()).await.unwrap().attempts, 2);

        let read = store.read(&boundary(&tag), ReadOptions::new()).await.unwrap().events;
        let seen = witness.seen();
        let lengths: Vec<usize> = seen.iter().map(Vec::len).collect();
        assert_eq!(lengths, [0, 2, 3, 4], "decisions: fresh, cached, cached (stale), fresh");
        for (i, events) in seen.iter().enumerate() {
            assert_eq!(events[..], read[..events.len()], "decision {i} (records: {record})");
        }
    }
}

/// Numbers a boundary with the count of events it held when deciding (its "Numbered" events,
/// tagged `tag`, and anyone else's), optionally adding an event outside the boundary (unless
/// the boundary is every event) to the decision.
struct Counter {
    query: Query,
    tag: String,
}

impl CommandHandler for Counter {
    /// Whether the decision also appends an event outside the boundary.
    type Command = bool;
    type Error = Infallible;
    type Handles = Handle<i64>;

    fn command_type(&self, _: &bool) -> String {
        "Count".into()
    }

    fn model(&self, _: &bool, model: &mut DecisionModel) -> Handle<i64> {
        model.add(StateProjector::new("count", self.query.clone(), 0, |n, _| n + 1))
    }

    fn decide(
        &self,
        outside: &bool,
        h: &Handle<i64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, Infallible> {
        let numbered = event("Numbered", &self.tag, states.get(*h) + 1);
        let other = event("Audit", &format!("audit:{}", Uuid::new_v4()), 0);
        Ok(if *outside { vec![numbered, other] } else { vec![numbered] })
    }
}

/// Cached executors (clones sharing a cache, and one with its own) race writers that add
/// events matching `query` (tagged `noise`) by every other path: unconditional DCB appends,
/// stream appends, batches (one so large that its lock plan collapses to the global key),
/// replays of stored events, and commands of a plain executor; some commands are abandoned
/// mid-flight (outcome unknown). Every "Numbered" event (tagged `tag`, matching `query`) must
/// carry the number of `query`'s events before it plus one: a cached entry missing an event at
/// or below its head would let a decision on too low a count pass its condition.
async fn race_every_path_of_writing<S: DcbStore>(store: S, query: Query, tag: &str, noise: &str) {
    use pupsourcing_core::{ExpectedVersion, StreamId};
    let counter = || Counter { query: query.clone(), tag: tag.to_string() };
    let shared = CommandExecutor::new(store.clone()).cache_boundaries(2).max_attempts(200);
    let own = CommandExecutor::new(store.clone()).cache_boundaries(1).record_commands(false);
    let executors = [shared.clone(), shared, own.max_attempts(200)];
    let mut tasks: Vec<_> = executors
        .into_iter()
        .enumerate()
        .map(|(i, executor)| {
            let counter = counter();
            tokio::spawn(async move {
                for n in 0..30_u64 {
                    let outside = (n + i as u64).is_multiple_of(3);
                    if n % 7 == 3 {
                        // Abandoned after a moment: it may or may not have appended.
                        let limit = std::time::Duration::from_micros(200 + 300 * (n % 5));
                        let run = executor.execute(&counter, &outside);
                        let _ = tokio::time::timeout(limit, run).await;
                    } else {
                        executor.execute(&counter, &outside).await.expect("200 attempts suffice");
                    }
                }
            })
        })
        .collect();
    let noisy = {
        let (store, noise) = (store.clone(), noise.to_string());
        tokio::spawn(async move {
            let stream = StreamId::new("Counted", Uuid::new_v4());
            let mut stored: Vec<NewEvent> = Vec::new();
            for n in 0..40_u64 {
                let one = || event("Noise", &noise, 0);
                let many_tags = || {
                    let tags = (0..99).map(|i| format!("many:{i}:{}", Uuid::new_v4()));
                    one().with_tags(tags.collect::<Vec<_>>())
                };
                let events = match n % 5 {
                    0 => vec![one()],
                    1 => vec![one(), event("Noise", "elsewhere:1", 0), one()],
                    2 => {
                        store.append(&stream, ExpectedVersion::Any, &[one()]).await.unwrap();
                        continue;
                    }
                    3 => vec![stored[n as usize % stored.len()].clone()],
                    _ => vec![many_tags(), many_tags()],
                };
                let result = store.append_if(&events, None).await.unwrap();
                assert_eq!(result.replayed, n % 5 == 3);
                stored.extend(events);
                tokio::task::yield_now().await;
            }
        })
    };
    tasks.push(noisy);
    // Caller transactions holding their appends open a moment; one in three rolls back.
    let (transactions, noise) = (store.clone(), noise.to_string());
    tasks.push(tokio::spawn(async move {
        for n in 0..20_u64 {
            let mut tx = transactions.begin().await.unwrap();
            let events = [event("Noise", "elsewhere:2", 0), event("Noise", &noise, 0)];
            transactions.append_if_in(&mut tx, &events, None).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1 + n % 3)).await;
            if n.is_multiple_of(3) {
                transactions.rollback(tx).await.unwrap();
            } else {
                transactions.commit(tx).await.unwrap();
            }
        }
    }));
    let plain = CommandExecutor::new(store.clone()).cache_boundaries(0).max_attempts(200);
    let counter = counter();
    tasks.push(tokio::spawn(async move {
        for n in 0..15_u64 {
            plain.execute(&counter, &n.is_multiple_of(2)).await.unwrap();
        }
    }));
    for task in tasks {
        task.await.unwrap();
    }
    let read = store.read(&query, ReadOptions::new()).await.unwrap().events;
    let numbered: Vec<_> =
        read.iter().enumerate().filter(|(_, e)| e.event_type == "Numbered").collect();
    for (i, e) in &numbered {
        assert_eq!(value(e), *i as i64 + 1, "event at {} decided on a wrong count", e.position);
    }
    assert!(numbered.len() >= 3 * 25 + 15, "only {} decisions", numbered.len());
}

/// `race_every_path_of_writing` on a boundary of one tag.
pub async fn cached_decisions_see_every_path_of_writing<S: DcbStore>(store: S) {
    let tag = format!("count:{}", Uuid::new_v4());
    race_every_path_of_writing(store, boundary(&tag), &tag, &tag).await;
}

/// `race_every_path_of_writing` on a boundary of two items, one of which shares its tag with
/// events outside it ("Noise" events tagged like the "Numbered" ones).
pub async fn cached_multi_item_decisions_see_every_path_of_writing<S: DcbStore>(store: S) {
    let (tag, noise) = (format!("count:{}", Uuid::new_v4()), format!("noise:{}", Uuid::new_v4()));
    let query = Query::from_items([
        QueryItem::types(["Numbered"]).with_tags([tag.clone()]),
        QueryItem::tags([noise.clone()]),
    ]);
    race_every_path_of_writing(store.clone(), query, &tag, &noise).await;
    let outside = store.read(&boundary(&tag), ReadOptions::new()).await.unwrap();
    assert!(outside.events.iter().all(|e| e.event_type == "Numbered"));
}

/// `race_every_path_of_writing` on [`Query::all`]: every event of the log is the boundary
/// (the store must be one of this test's own).
pub async fn cached_decisions_on_all_events_see_every_path_of_writing<S: DcbStore>(store: S) {
    let tag = format!("count:{}", Uuid::new_v4());
    race_every_path_of_writing(store, Query::all(), &tag, &tag).await;
}

/// Numbers a boundary like [`Counter`], with the event id the command gives, if any.
struct IdCounter {
    tag: String,
}

impl CommandHandler for IdCounter {
    type Command = Option<Uuid>;
    type Error = Infallible;
    type Handles = Handle<i64>;

    fn command_type(&self, _: &Option<Uuid>) -> String {
        "Count".into()
    }

    fn model(&self, _: &Option<Uuid>, model: &mut DecisionModel) -> Handle<i64> {
        model.add(StateProjector::new("count", boundary(&self.tag), 0, |n, _| n + 1))
    }

    fn decide(
        &self,
        id: &Option<Uuid>,
        h: &Handle<i64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, Infallible> {
        let numbered = event("Numbered", &self.tag, states.get(*h) + 1);
        Ok(vec![match id {
            Some(id) => numbered.with_id(*id),
            None => numbered,
        }])
    }
}

/// A command retried with the same event id (say after a lost reply) is a replay: the store
/// returns the original positions, which lie at or below the cached head. Adding the event to
/// the cache again would count it twice, and the next decision's condition (nothing after its
/// original position) would pass on that wrong count.
pub async fn cached_replays_are_not_counted_twice<S: DcbStore>(store: S) {
    for record in [true, false] {
        let counter = IdCounter { tag: format!("replayed:{}", Uuid::new_v4()) };
        let executor =
            CommandExecutor::new(store.clone()).cache_boundaries(4).record_commands(record);
        let id = Some(Uuid::new_v4());
        let first = executor.execute(&counter, &id).await.unwrap();
        let again = executor.execute(&counter, &id).await.unwrap();
        assert_eq!(again.positions, first.positions, "a replay returns the original positions");
        executor.execute(&counter, &None).await.unwrap();
        executor.execute(&counter, &None).await.unwrap();
        assert_eq!(numbers(&store, &counter.tag).await, [1, 2, 3], "records: {record}");
    }
}

/// Clones of one executor caching a single boundary decide on two boundaries at once, so
/// entries are evicted and read again between a decision and the extension of its entry, while
/// unconditional appends add events to both: neither boundary may get a number decided on a
/// wrong count.
pub async fn cached_decisions_survive_eviction_races<S: DcbStore>(store: S) {
    let tags = [format!("evicted:{}", Uuid::new_v4()), format!("evicted:{}", Uuid::new_v4())];
    let executor = CommandExecutor::new(store.clone()).cache_boundaries(1).max_attempts(200);
    let mut tasks: Vec<_> = (0..4)
        .map(|i| {
            let (executor, tags) = (executor.clone(), tags.clone());
            tokio::spawn(async move {
                for n in 0..40 {
                    let tag = &tags[(n + i) % 2];
                    let counter = Counter { query: boundary(tag), tag: tag.clone() };
                    executor.execute(&counter, &(n.is_multiple_of(3))).await.expect("200 attempts");
                }
            })
        })
        .collect();
    let (noisy, noise_tags) = (store.clone(), tags.clone());
    tasks.push(tokio::spawn(async move {
        for n in 0..60 {
            noisy.append_if(&[event("Noise", &noise_tags[n % 2], 0)], None).await.unwrap();
            tokio::task::yield_now().await;
        }
    }));
    for task in tasks {
        task.await.unwrap();
    }
    for tag in &tags {
        let read = store.read(&boundary(tag), ReadOptions::new()).await.unwrap().events;
        for (i, e) in read.iter().enumerate().filter(|(_, e)| e.event_type == "Numbered") {
            assert_eq!(value(e), i as i64 + 1, "event at {} decided on a wrong count", e.position);
        }
        assert_eq!(read.len(), 80 + 30);
    }
}

/// Decides on whether its boundary (one tag, the command) holds any event, with `decide`;
/// every command is declared to start its boundary (`CommandHandler::expects_new_boundary`).
struct Presence {
    decide: fn(&str, bool) -> Result<Vec<NewEvent>, &'static str>,
}

impl Presence {
    /// Claims a name; a taken name is refused.
    fn claim() -> Self {
        Self {
            decide: |name, taken| {
                if taken { Err("taken") } else { Ok(vec![event("Claimed", name, 1)]) }
            },
        }
    }

    /// Deposits into an opened account, wrongly declared new: on the assumed empty boundary it
    /// refuses (no such account) or, when `quiet`, appends nothing.
    fn deposit(quiet: bool) -> Self {
        let decide = match quiet {
            false => |account: &str, opened| match opened {
                true => Ok(vec![event("Deposited", account, 1)]),
                false => Err("no such account"),
            },
            true => |account: &str, opened| match opened {
                true => Ok(vec![event("Deposited", account, 1)]),
                false => Ok(Vec::new()),
            },
        };
        Self { decide }
    }
}

impl CommandHandler for Presence {
    /// The boundary's tag.
    type Command = String;
    type Error = &'static str;
    type Handles = Handle<bool>;

    fn command_type(&self, _: &String) -> String {
        "Presence".into()
    }

    fn model(&self, tag: &String, model: &mut DecisionModel) -> Handle<bool> {
        model.add(StateProjector::new("present", boundary(tag), false, |_, _| true))
    }

    fn decide(
        &self,
        tag: &String,
        present: &Handle<bool>,
        states: &States,
    ) -> Result<Vec<NewEvent>, &'static str> {
        (self.decide)(tag, *states.get(*present))
    }

    fn expects_new_boundary(&self, _: &String) -> bool {
        true
    }
}

/// A command declared to start its boundary is decided on the empty boundary without a read:
/// on a new boundary in one attempt, with or without a cache; on a boundary that has events,
/// its condition fails, nothing is written, and it is decided again on a fresh read (two
/// attempts, or a refusal made on the read, never on the assumed empty state). A success
/// enters the boundary in the cache: a later append by another writer makes it stale. Numbers
/// with a handler that always (wrongly) declares its boundary new come out without repeats.
pub async fn decisions_on_new_boundaries_need_no_read<S: DcbStore>(store: S) {
    let claim = Presence::claim();
    let attempts = |outcome: Result<_, ExecuteError<&'static str>>| match outcome {
        Ok(CommandOutcome { attempts, .. }) => attempts,
        Err(e) => panic!("the executor failed: {e}"),
    };
    let cached = CommandExecutor::new(store.clone()).cache_boundaries(8);
    let plain = CommandExecutor::new(store.clone()).cache_boundaries(0).record_commands(false);
    let name = format!("name:{}", Uuid::new_v4());
    assert_eq!(attempts(plain.execute(&claim, &name).await), 1, "an empty boundary");
    for executor in [&plain, &cached, &CommandExecutor::new(store.clone())] {
        let refused = executor.execute(&claim, &name).await;
        assert!(matches!(refused, Err(ExecuteError::Rejected("taken"))), "{refused:?}");
    }
    assert_eq!(numbers(&store, &name).await, [1], "a taken name was claimed again");

    // Declared new but not: each command of an uncached executor fails once, then reads.
    let tag = format!("counter:{}", Uuid::new_v4());
    let next = Next { tag: tag.clone(), new: true };
    let count =
        |outcome: Result<CommandOutcome, ExecuteError<Infallible>>| outcome.unwrap().attempts;
    let uncached = CommandExecutor::new(store.clone()).cache_boundaries(0);
    assert_eq!(count(uncached.execute(&next, &()).await), 1);
    assert_eq!(count(uncached.execute(&next, &()).await), 2, "decided on the empty boundary");
    let warm = CommandExecutor::new(store.clone()).cache_boundaries(8);
    assert_eq!(count(warm.execute(&next, &()).await), 2, "not in the cache: assumed new");
    assert_eq!(count(warm.execute(&next, &()).await), 1, "in the cache");
    assert_eq!(numbers(&store, &tag).await, [1, 2, 3, 4]);

    // A success on the assumed empty boundary enters the cache: another writer's append then
    // makes the next (undeclared) command's cached decision stale.
    let tag = format!("counter:{}", Uuid::new_v4());
    let (next, plain_next) =
        (Next { tag: tag.clone(), new: true }, Next { tag: tag.clone(), new: false });
    assert_eq!(count(warm.execute(&next, &()).await), 1);
    assert_eq!(count(uncached.execute(&plain_next, &()).await), 1);
    assert_eq!(count(warm.execute(&plain_next, &()).await), 2, "the success was not cached");
    assert_eq!(numbers(&store, &tag).await, [1, 2, 3]);
}

/// Executors (clones sharing a cache, executors of their own, one without a cache, with and
/// without records) race to claim the same names, each command declared to start its
/// boundary, some names taken before: every name ends with exactly one claim, and every other
/// command was refused (five races, on names of their own). A decision on the assumed empty boundary
/// appended under a condition weaker than "no event matches at all" would claim a name twice.
pub async fn racing_claims_on_new_boundaries_claim_once<S: DcbStore>(store: S) {
    for _ in 0..5 {
        race_claims(&store).await;
    }
}

/// One race of [`racing_claims_on_new_boundaries_claim_once`], on names of its own.
async fn race_claims<S: DcbStore>(store: &S) {
    let names: Vec<String> = (0..12).map(|_| format!("unique:{}", Uuid::new_v4())).collect();
    let shared = CommandExecutor::new(store.clone()).cache_boundaries(4);
    let executors = [
        shared.clone(),
        shared,
        CommandExecutor::new(store.clone()).cache_boundaries(64),
        CommandExecutor::new(store.clone()).cache_boundaries(0).record_commands(false),
        CommandExecutor::new(store.clone()).cache_boundaries(2).record_commands(false),
    ];
    // Some names are taken before the race: their boundaries are not new.
    let early: Vec<&String> = names.iter().step_by(4).collect();
    for name in &early {
        store.append_if(&[event("Claimed", name, 1)], None).await.unwrap();
    }
    let tasks: Vec<_> = executors
        .into_iter()
        .enumerate()
        .map(|(i, executor)| {
            let names = names.clone();
            tokio::spawn(async move {
                let mut claimed = 0;
                for n in 0..names.len() {
                    let name = &names[(n * 5 + i * 7) % names.len()];
                    match executor.execute(&Presence::claim(), name).await {
                        Ok(_) => claimed += 1,
                        Err(ExecuteError::Rejected("taken")) => {}
                        Err(e) => panic!("the executor failed: {e}"),
                    }
                }
                claimed
            })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        claimed += task.await.unwrap();
    }
    for name in &names {
        assert_eq!(numbers(store, name).await, [1], "{name} was not claimed exactly once");
    }
    assert_eq!(claimed, names.len() - early.len(), "claims that succeeded");
}

/// A refusal, or a decision to append nothing, made on the assumed empty boundary is made
/// again on a fresh read, with a cache and without; and such a decision leaves no entry in the
/// cache (where the fresh read is too long to cache, an entry left behind would cost the next
/// command on the boundary a failed append).
pub async fn assumed_refusals_are_made_again_on_a_read<S: DcbStore>(store: S) {
    for quiet in [false, true] {
        for cache in [0, 8] {
            let account = format!("account:{}", Uuid::new_v4());
            store.append_if(&[event("Opened", &account, 0)], None).await.unwrap();
            let executor = CommandExecutor::new(store.clone()).cache_boundaries(cache);
            let outcome = executor.execute(&Presence::deposit(quiet), &account).await;
            let outcome = outcome.unwrap_or_else(|e| panic!("quiet {quiet}, cache {cache}: {e}"));
            assert_eq!((outcome.positions.len(), outcome.attempts), (1, 1), "quiet {quiet}");
            assert_eq!(numbers(&store, &account).await, [0, 1]);
        }
    }
    let account = format!("account:{}", Uuid::new_v4());
    for _ in 0..3 {
        let many: Vec<NewEvent> = (0..400).map(|_| event("Opened", &account, 0)).collect();
        store.append_if(&many, None).await.unwrap();
    }
    let executor = CommandExecutor::new(store.clone()).cache_boundaries(8);
    let refusing = Presence::deposit(false);
    assert_eq!(executor.execute(&refusing, &account).await.unwrap().attempts, 1);
    let next = Next { tag: account.clone(), new: false };
    let outcome = executor.execute(&next, &()).await.unwrap();
    assert_eq!(outcome.attempts, 1, "decided on an empty entry the refusal left behind");
}
