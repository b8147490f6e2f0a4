//! The projection suite: processors, policies and runners on a real backend, checked against
//! a read model table with one row per handled event. The table has no unique constraint, so
//! that an event applied twice shows as a second row instead of failing the handler (which a
//! processor would treat as a poison event, hiding the double apply).
//!
//! A backend's test file provides the table through [`ReadModel`] and instantiates the tests
//! with [`crate::projection_conformance!`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pupsourcing_core::dcb::{DcbStore, Query, QueryItem};
use pupsourcing_core::projection::{Partition, ProjectionStore, Scope};
use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId};
use pupsourcing_projection::{
    CancellationToken, HandlerError, PartitionState, PoisonPolicy, Processor, ProcessorConfig,
    Progress, Projection, ProjectionError, Runner, replay_dead_letter, reset, status,
};
use rand::Rng;
use uuid::Uuid;

use crate::fixtures::{event, new_stream, stress_duration};

/// A read-model table of the backend under test: one row per handled event.
pub trait ReadModel<S: EventStore>: Clone + Send + Sync + 'static {
    /// Inserts a row for `event` in the caller's transaction (a second one if it is already
    /// there: the table must not have a unique constraint).
    fn insert(
        &self,
        conn: &mut S::Connection,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Deletes every row in the caller's transaction.
    fn clear(
        &self,
        conn: &mut S::Connection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// The committed rows, in insertion order: (event id, position).
    fn rows(&self) -> impl Future<Output = Vec<(Uuid, Position)>> + Send;
}

/// What the test projection does on the events it is told about.
#[derive(Default)]
struct Faults {
    /// Fail (after writing the row: a rollback must remove it) on these events.
    fail: HashSet<Uuid>,
    /// Panic on these events.
    panic: HashSet<Uuid>,
    /// Fail this many more times, on any event.
    flaky: AtomicU32,
}

/// The projection the suite runs: writes one row per event into the read model.
#[derive(Clone)]
pub struct Recorder<M> {
    name: String,
    scope: Scope,
    model: M,
    faults: Arc<std::sync::Mutex<Faults>>,
    delay: Duration,
    /// How long the reset hook keeps its transaction open after clearing the read model (a
    /// large read model takes a while to clear).
    reset_hold: Duration,
}

impl<M> Recorder<M> {
    /// A projection `name` over every event, writing into `model`.
    pub fn new(name: &str, model: M) -> Self {
        Self {
            name: name.to_string(),
            scope: Scope::all(),
            model,
            faults: Default::default(),
            delay: Duration::ZERO,
            reset_hold: Duration::ZERO,
        }
    }

    /// Sleeps `delay` before handling each event (a slow handler: batches take a while).
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub(crate) fn scoped(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    pub(crate) fn failing_on(self, ids: impl IntoIterator<Item = Uuid>) -> Self {
        self.faults.lock().unwrap().fail.extend(ids);
        self
    }

    fn healed(&self) {
        let mut faults = self.faults.lock().unwrap();
        faults.fail.clear();
        faults.panic.clear();
    }
}

impl<S: EventStore, M: ReadModel<S>> Projection<S> for Recorder<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scope(&self) -> Scope {
        self.scope.clone()
    }

    async fn handle(
        &self,
        conn: &mut S::Connection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.model.insert(conn, event).await?;
        let (fail, panic) = {
            let faults = self.faults.lock().unwrap();
            let flaky = faults
                .flaky
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            (flaky || faults.fail.contains(&event.event_id), faults.panic.contains(&event.event_id))
        };
        assert!(!panic, "poison event {}", event.event_id);
        if fail {
            return Err(format!("cannot project event {}", event.event_id).into());
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut S::Connection) -> Result<(), HandlerError> {
        self.model.clear(conn).await?;
        tokio::time::sleep(self.reset_hold).await;
        Ok(())
    }
}

/// Appends `n` single-event appends to fresh streams of `aggregate_type`, of `event_type`, and
/// returns them as recorded.
async fn append_events<S: EventStore>(
    store: &S,
    aggregate_type: &str,
    event_type: &str,
    n: usize,
) -> Vec<RecordedEvent> {
    for _ in 0..n {
        let stream = StreamId::new(aggregate_type, Uuid::now_v7());
        store.append(&stream, ExpectedVersion::NoStream, &[event(event_type)]).await.unwrap();
    }
    let mut events = all_events(store).await;
    events.split_off(events.len() - n)
}

async fn all_events<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(1, 1_000_000).await.unwrap()
}

fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

async fn row_ids<S: EventStore, M: ReadModel<S>>(model: &M) -> Vec<Uuid> {
    model.rows().await.into_iter().map(|(id, _)| id).collect()
}

fn config() -> ProcessorConfig {
    ProcessorConfig::default().batch_size(10).poll_interval(Duration::from_millis(5))
}

/// Every event is handled once, in position order; a second run handles nothing; events
/// appended later are handled by the next run.
pub async fn every_event_once<S: ProjectionStore, M: ReadModel<S>>(store: S, model: M) {
    let events = append_events(&store, "Order", "Placed", 25).await;
    let processor =
        Processor::new(store.clone(), Recorder::new("all", model.clone()), config()).unwrap();
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 25);
    assert_eq!(row_ids(&model).await, ids(&events));
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 0, "nothing twice");
    let more = append_events(&store, "Order", "Placed", 3).await;
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 3);
    assert_eq!(row_ids(&model).await, ids(&[events, more.clone()].concat()));
    let checkpoint = store.checkpoint("all", Partition::all()).await.unwrap();
    assert_eq!(checkpoint.position, more.last().unwrap().position);
}

/// Four partitions of a scoped projection split its events between them: each in-scope
/// event is handled once, by the partition its hash names, and nothing out of scope.
pub async fn scoped_partitions_split_the_log<S: ProjectionStore + DcbStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append_events(&store, "Order", "Placed", 30).await;
    append_events(&store, "Invoice", "Placed", 10).await;
    append_events(&store, "Order", "Shipped", 10).await;
    let tagged = NewEvent::new("Placed", b"{}".to_vec()).with_tags(["region:eu"]);
    store.append_if(&[tagged], None).await.unwrap();
    let scope = Scope::all().event_types(["Placed"]).query(
        Query::from_items([QueryItem::types(["Placed"])]).or(QueryItem::tags(["region:eu"])),
    );
    let projection = Recorder::new("placed", model.clone()).scoped(scope.clone());
    let runner = Runner::new(store.clone()).partitions(projection, 4, config()).unwrap();
    runner.run_until_caught_up().await.unwrap();
    let expected: Vec<Uuid> = all_events(&store)
        .await
        .into_iter()
        .filter(|e| scope.matches(e))
        .map(|e| e.event_id)
        .collect();
    assert_eq!(expected.len(), 41);
    let mut rows = row_ids(&model).await;
    let unique: HashSet<Uuid> = rows.iter().copied().collect();
    assert_eq!(unique.len(), rows.len(), "no event twice");
    rows.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(rows, expected_sorted, "exactly the in-scope events");
    let counts: Vec<u64> = {
        let mut counts = Vec::new();
        for p in Partition::every(4) {
            let c = store.checkpoint("placed", p).await.unwrap();
            counts.push(store.pending(&scope, p, 0).await.unwrap().events);
            assert_eq!(store.pending(&scope, p, c.position).await.unwrap().events, 0);
        }
        counts
    };
    assert_eq!(counts.iter().sum::<u64>(), 41, "the partitions split the scope");
    assert!(counts.iter().filter(|&&c| c > 0).count() >= 2, "more than one partition has work");
}

/// A handler error under the Stop policy: the batch rolls back (with the row the handler
/// wrote before failing), the events before the poison are applied, the checkpoint stays just
/// below it with the error stored; once healed, the rest follows exactly once.
pub async fn stop_policy_stops_before_the_poison<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 12).await;
    let poison = &events[6];
    let projection = Recorder::new("stopper", model.clone()).failing_on([poison.event_id]);
    let processor = Processor::new(store.clone(), projection.clone(), config()).unwrap();
    let error = processor.run(CancellationToken::new()).await.unwrap_err();
    let ProjectionError::Handler { position, event_id, .. } = &error else {
        panic!("expected a handler error, got {error}");
    };
    assert_eq!((*position, *event_id), (poison.position, poison.event_id));
    assert_eq!(row_ids(&model).await, ids(&events[..6]), "the prefix, nothing of the poison");
    let checkpoint = store.checkpoint("stopper", Partition::all()).await.unwrap();
    assert_eq!(checkpoint.position, poison.position - 1);
    assert!(checkpoint.last_error.as_deref().unwrap_or("").contains("cannot project"));
    let statuses = status(&store, &[]).await.unwrap();
    assert_eq!(statuses[0].state, PartitionState::Failed);
    assert_eq!(statuses[0].lag_events, 6);
    projection.healed();
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 6);
    assert_eq!(row_ids(&model).await, ids(&events));
    let checkpoint = store.checkpoint("stopper", Partition::all()).await.unwrap();
    assert_eq!(checkpoint.last_error, None, "advancing clears the error");
}

/// A panicking handler is an error like any other: nothing of its batch remains.
pub async fn panics_roll_back_like_errors<S: ProjectionStore, M: ReadModel<S>>(store: S, model: M) {
    let events = append_events(&store, "Order", "Placed", 5).await;
    let projection = Recorder::new("panicky", model.clone());
    projection.faults.lock().unwrap().panic.insert(events[2].event_id);
    let processor = Processor::new(store.clone(), projection.clone(), config()).unwrap();
    let error = processor.run_until_caught_up().await.unwrap_err();
    assert!(error.to_string().contains("panicked"), "{error}");
    assert_eq!(row_ids(&model).await, ids(&events[..2]));
    projection.healed();
    processor.run_until_caught_up().await.unwrap();
    assert_eq!(row_ids(&model).await, ids(&events));
}

/// Retry: a handler failing twice succeeds on the third try, each event applied once; with
/// fewer attempts than failures, the partition stops.
pub async fn retry_policy_retries_then_stops<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 4).await;
    let retry = |attempts| PoisonPolicy::Retry { attempts, backoff: Duration::from_millis(1) };
    let projection = Recorder::new("retrying", model.clone());
    projection.faults.lock().unwrap().flaky.store(2, Ordering::SeqCst);
    let processor =
        Processor::new(store.clone(), projection.clone(), config().poison(retry(3))).unwrap();
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 4);
    assert_eq!(row_ids(&model).await, ids(&events));

    let more = append_events(&store, "Order", "Placed", 2).await;
    let stubborn = projection.clone().failing_on([more[0].event_id]);
    let processor = Processor::new(store.clone(), stubborn, config().poison(retry(2))).unwrap();
    match processor.run_until_caught_up().await {
        Err(ProjectionError::Handler { attempts: 2, position, .. }) => {
            assert_eq!(position, more[0].position)
        }
        other => panic!("expected a stop after 2 attempts, got {other:?}"),
    }
    assert_eq!(row_ids(&model).await.len(), 4);
}

/// A shutdown during a retry wait ends the wait: `run` returns `Ok` at once, nothing of the
/// failing batch applied, and the checkpoint where it was (the batch is tried again at the
/// next start).
pub async fn shutdown_cuts_a_retry_wait_short<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 3).await;
    let projection = Recorder::new("patient", model.clone()).failing_on([events[1].event_id]);
    let slow = PoisonPolicy::Retry { attempts: 5, backoff: Duration::from_secs(30) };
    let processor = Processor::new(store.clone(), projection, config().poison(slow)).unwrap();
    let shutdown = CancellationToken::new();
    let run = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { processor.run(shutdown).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await; // the first try failed: waiting
    let cancelled = Instant::now();
    shutdown.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), run).await;
    let outcome = outcome.expect("run returns without finishing the 30 s wait").unwrap();
    outcome.expect("a shutdown is not an error");
    assert!(cancelled.elapsed() < Duration::from_secs(5));
    assert!(row_ids(&model).await.is_empty(), "nothing of the failing batch applied");
    let checkpoint = store.checkpoint("patient", Partition::all()).await.unwrap();
    assert_eq!(checkpoint.position, 0);
}

/// Dead letters: poison events are set aside in the checkpoint's transaction, every other
/// event is applied exactly once; a replay with a healed handler applies and removes one.
pub async fn dead_letters_set_poison_aside<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 15).await;
    let poison = [events[3].event_id, events[11].event_id];
    let projection = Recorder::new("lettered", model.clone()).failing_on(poison);
    let config = config().poison(PoisonPolicy::DeadLetter);
    let processor = Processor::new(store.clone(), projection.clone(), config).unwrap();
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 15);
    let expected: Vec<Uuid> = ids(&events).into_iter().filter(|id| !poison.contains(id)).collect();
    assert_eq!(row_ids(&model).await, expected);
    let letters = store.dead_letters(Some("lettered")).await.unwrap();
    let lettered: Vec<Uuid> = letters.iter().map(|l| l.event_id).collect();
    assert_eq!(lettered, poison);
    assert!(letters[0].error.contains("cannot project"));
    assert_eq!(letters[1].position, events[11].position);
    let checkpoint = store.checkpoint("lettered", Partition::all()).await.unwrap();
    assert_eq!(checkpoint.position, events[14].position);

    assert!(
        replay_dead_letter(&store, &projection, events[3].position).await.is_err(),
        "still failing"
    );
    assert_eq!(store.dead_letters(Some("lettered")).await.unwrap().len(), 2);
    projection.healed();
    assert!(replay_dead_letter(&store, &projection, events[3].position).await.unwrap());
    assert!(!replay_dead_letter(&store, &projection, events[3].position).await.unwrap(), "once");
    assert_eq!(store.dead_letters(Some("lettered")).await.unwrap().len(), 1);
    assert_eq!(row_ids(&model).await.len(), 14);
}

/// Two processors of one projection and partition run at once on a slow handler: their
/// compare-and-set checkpoints let only one apply each batch, so every event lands once.
pub async fn two_processors_never_apply_a_batch_twice<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 60).await;
    let mut projection = Recorder::new("twins", model.clone());
    projection.delay = Duration::from_millis(1);
    let contended = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let processor =
                Processor::new(store.clone(), projection.clone(), config().batch_size(5)).unwrap();
            let contended = contended.clone();
            tokio::spawn(async move {
                loop {
                    match processor.step().await.unwrap() {
                        Progress::CaughtUp { .. } => return,
                        Progress::Contended => {
                            contended.fetch_add(1, Ordering::SeqCst);
                        }
                        Progress::Handled { .. } => {}
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rows = row_ids(&model).await;
    let unique: HashSet<Uuid> = rows.iter().copied().collect();
    assert_eq!(unique.len(), rows.len(), "no event applied twice");
    assert_eq!(unique, ids(&events).into_iter().collect::<HashSet<_>>());
    eprintln!("two processors: {} contended batches", contended.load(Ordering::SeqCst));
    assert!(contended.load(Ordering::SeqCst) > 0, "the processors really raced");
}

/// Reset clears the read model and the checkpoints in one transaction; the next run replays
/// every event once.
pub async fn reset_replays_from_the_start<S: ProjectionStore, M: ReadModel<S>>(store: S, model: M) {
    let events = append_events(&store, "Order", "Placed", 8).await;
    let projection = Recorder::new("rebuilt", model.clone());
    let processor = Processor::new(store.clone(), projection.clone(), config()).unwrap();
    processor.run_until_caught_up().await.unwrap();
    reset(&store, &projection).await.unwrap();
    assert!(row_ids(&model).await.is_empty(), "the reset hook ran");
    assert!(store.checkpoints().await.unwrap().iter().all(|c| c.projection != "rebuilt"));
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 8);
    assert_eq!(row_ids(&model).await, ids(&events));
}

/// A reset while a processor runs and a dead letter is replayed (the reset hook takes its
/// time, as clearing a large read model does): whatever commits around the reset is either
/// cleared by it or kept with its checkpoint, so the next runs apply every event exactly once.
pub async fn reset_while_running_applies_nothing_twice<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 30).await;
    let poison = events[5].clone();
    let projection = Recorder::new("rerun", model.clone()).failing_on([poison.event_id]);
    let lettering = config().poison(PoisonPolicy::DeadLetter);
    let processor = Processor::new(store.clone(), projection.clone(), lettering.clone()).unwrap();
    assert_eq!(processor.run_until_caught_up().await.unwrap(), 30);
    assert_eq!(store.dead_letters(Some("rerun")).await.unwrap().len(), 1);
    projection.healed();
    let events = [events, append_events(&store, "Order", "Placed", 30).await].concat();

    // A processor working through the new events, slowly.
    let mut slow = projection.clone();
    slow.delay = Duration::from_millis(2);
    let running = Processor::new(store.clone(), slow, lettering.clone()).unwrap();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { running.run(shutdown).await }
    });
    while model.rows().await.len() <= 29 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The reset, and a replay of the dead letter while it clears.
    let mut resetter = projection.clone();
    resetter.reset_hold = Duration::from_millis(150);
    let resetting = tokio::spawn({
        let store = store.clone();
        async move { reset(&store, &resetter).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let replayed = replay_dead_letter(&store, &projection, poison.position).await.unwrap();
    resetting.await.unwrap().unwrap();
    eprintln!("replayed during the reset: {replayed}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.cancel();
    run.await.unwrap().unwrap();

    let processor = Processor::new(store.clone(), projection, lettering).unwrap();
    processor.run_until_caught_up().await.unwrap();
    let rows = row_ids(&model).await;
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for id in &rows {
        *counts.entry(*id).or_default() += 1;
    }
    let twice: Vec<usize> = (0..events.len())
        .filter(|&i| counts.get(&events[i].event_id).copied().unwrap_or(0) > 1)
        .collect();
    assert!(twice.is_empty(), "events applied twice (by index): {twice:?}");
    assert_eq!(rows.len(), events.len(), "every event, once");
    assert!(store.dead_letters(Some("rerun")).await.unwrap().is_empty());
}

/// Cancelling a running processor finishes the batch in hand: the read model and the
/// checkpoint agree, and a new processor resumes without a gap or a repeat.
pub async fn graceful_shutdown_resumes_exactly_once<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 40).await;
    let mut projection = Recorder::new("resumable", model.clone());
    projection.delay = Duration::from_millis(2);
    let processor =
        Processor::new(store.clone(), projection.clone(), config().batch_size(4)).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { processor.run(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let rows = model.rows().await;
    let checkpoint = store.checkpoint("resumable", Partition::all()).await.unwrap();
    assert!(rows.len() < 40, "stopped early ({} rows)", rows.len());
    assert_eq!(rows.last().map_or(0, |r| r.1), checkpoint.position, "rows match the checkpoint");
    let processor = Processor::new(store.clone(), projection, config()).unwrap();
    processor.run_until_caught_up().await.unwrap();
    assert_eq!(row_ids(&model).await, ids(&events));
}

/// Many writers hold transactions open for random times and roll back 20% of them while
/// four partitions run: the read model ends with exactly the committed events, each once,
/// and each aggregate's events in version order.
pub async fn out_of_order_writers_are_projected_exactly_once<
    S: ProjectionStore,
    M: ReadModel<S>,
>(
    store: S,
    model: M,
) {
    out_of_order_writers(store, model, false).await
}

/// As [`out_of_order_writers_are_projected_exactly_once`], for a projection whose scope holds
/// about a quarter of the events (scattered among the others), so that most of its batches are
/// short and move its checkpoints to heads past events it never sees.
pub async fn out_of_order_writers_are_projected_exactly_once_in_scope<
    S: ProjectionStore,
    M: ReadModel<S>,
>(
    store: S,
    model: M,
) {
    out_of_order_writers(store, model, true).await
}

async fn out_of_order_writers<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
    scoped: bool,
) {
    const WRITERS: usize = 6;
    let deadline = Instant::now() + stress_duration();
    let shutdown = CancellationToken::new();
    let mut projection = Recorder::new("tail", model.clone());
    if scoped {
        projection = projection.scoped(Scope::all().event_types(["Tick"]));
    }
    let runner = Runner::new(store.clone())
        .partitions(projection, 4, config().batch_size(7).poll_interval(Duration::from_millis(1)))
        .unwrap();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut committed = Vec::new();
                let streams: Vec<StreamId> = (0..3).map(|_| new_stream()).collect();
                while Instant::now() < deadline {
                    let (count, hold_ms, commit, stream) = {
                        let mut rng = rand::rng();
                        let r = (rng.random_range(1..=3), rng.random_range(0..6));
                        (r.0, r.1, rng.random_bool(0.8), rng.random_range(0..3))
                    };
                    let batch: Vec<_> = (0..count)
                        .map(|_| match scoped && rand::random_bool(0.75) {
                            true => event("Tock"),
                            false => event("Tick"),
                        })
                        .collect();
                    let mut tx = store.begin().await.unwrap();
                    store
                        .append_in(&mut tx, &streams[stream], ExpectedVersion::Any, &batch)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                    if commit {
                        store.commit(tx).await.unwrap();
                        let ticks = batch.iter().filter(|e| e.event_type == "Tick");
                        committed.extend(ticks.map(|e| e.event_id));
                    } else {
                        store.rollback(tx).await.unwrap();
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
    // Let the partitions catch up with the last commits, then stop them.
    let head = store.head().await.unwrap();
    let caught_up = async {
        loop {
            let checkpoints = store.checkpoints().await.unwrap();
            let tail: Vec<_> = checkpoints.iter().filter(|c| c.projection == "tail").collect();
            if tail.len() == 4 && tail.iter().all(|c| c.position >= head) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), caught_up).await.expect("partitions catch up");
    shutdown.cancel();
    assert!(running.await.unwrap().is_ok());

    let rows = model.rows().await;
    let mut seen = HashMap::new();
    for (id, position) in &rows {
        assert!(seen.insert(*id, *position).is_none(), "event {id} applied twice");
    }
    let seen_ids: HashSet<Uuid> = seen.keys().copied().collect();
    assert_eq!(seen_ids, committed, "exactly the committed events");
    // Per aggregate, rows were inserted in version (= position) order.
    let by_id: HashMap<Uuid, RecordedEvent> =
        all_events(&store).await.into_iter().map(|e| (e.event_id, e)).collect();
    let mut last: HashMap<Uuid, Position> = HashMap::new();
    for (id, position) in rows {
        let aggregate = by_id[&id].stream.as_ref().unwrap().0.aggregate_id;
        let previous = last.insert(aggregate, position).unwrap_or(0);
        assert!(previous < position, "aggregate {aggregate} out of order");
    }
    assert!(committed.len() > 25, "the test wrote enough ({})", committed.len());
}

/// The database connections of a running processor are killed again and again (`kill`
/// terminates the sessions working for it: PostgreSQL's `pg_terminate_backend`), in its
/// handler, its checkpoint update, its reads and its commits, under each poison policy: it
/// neither stops nor treats the lost connection as a poison event, and ends with every event
/// applied exactly once.
pub async fn killed_connections_resume_exactly_once<S, M, K, F>(store: S, model: M, kill: K)
where
    S: ProjectionStore,
    M: ReadModel<S>,
    K: Fn() -> F,
    F: Future<Output = usize>,
{
    let policies = [
        PoisonPolicy::Stop,
        PoisonPolicy::DeadLetter,
        PoisonPolicy::Retry { attempts: 2, backoff: Duration::from_millis(1) },
    ];
    for (round, policy) in policies.into_iter().enumerate() {
        let name = format!("killed_{round}");
        let events = append_events(&store, "Order", "Placed", 300).await;
        let mut projection = Recorder::new(&name, model.clone());
        projection.delay = Duration::from_millis(1);
        let mut config = config().poison(policy);
        config.error_backoff = Duration::from_millis(5);
        let processor = Processor::new(store.clone(), projection, config).unwrap();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { processor.run(shutdown).await }
        });
        let last = events.last().unwrap().position;
        let (mut killed, mut killed_at) = (0, 0);
        let started = Instant::now();
        loop {
            let checkpoint = store.checkpoint(&name, Partition::all()).await.unwrap();
            if checkpoint.position >= last {
                break;
            }
            assert!(!run.is_finished(), "{policy:?}: the processor stopped: {:?}", run.await);
            assert!(started.elapsed() < Duration::from_secs(60), "{policy:?}: no progress");
            // Once per batch committed since the last kill (each lost pass doubles the
            // processor's wait before the next), at a random point of the next one.
            if checkpoint.position > killed_at {
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..15))).await;
                let k = kill().await;
                if k > 0 {
                    killed += k;
                    killed_at = store.checkpoint(&name, Partition::all()).await.unwrap().position;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        shutdown.cancel();
        run.await.unwrap().unwrap();
        eprintln!("{policy:?}: {killed} sessions killed");
        // (At least a few: on a loaded machine batches can outrun the killer.)
        assert!(killed >= 3, "{policy:?}: the test killed sessions ({killed})");
        assert!(store.dead_letters(Some(&name)).await.unwrap().is_empty(), "{policy:?}");
        let rows: Vec<Uuid> = model
            .rows()
            .await
            .into_iter()
            .filter(|(_, p)| events.iter().any(|e| e.position == *p))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(rows, ids(&events), "{policy:?}: every event exactly once");
    }
}

/// Bad settings are refused before anything runs.
pub async fn bad_settings_are_refused<S: ProjectionStore, M: ReadModel<S>>(store: S, model: M) {
    let named = |name: &str| Recorder::new(name, model.clone());
    assert!(Processor::new(store.clone(), named(""), config()).is_err(), "empty name");
    assert!(Processor::new(store.clone(), named("x"), config().batch_size(0)).is_err());
    let retry = PoisonPolicy::Retry { attempts: 0, backoff: Duration::ZERO };
    assert!(Processor::new(store.clone(), named("x"), config().poison(retry)).is_err());
    let twice = Runner::new(store.clone())
        .projection(named("x"), config())
        .unwrap()
        .projection(named("x"), config());
    assert!(matches!(twice, Err(ProjectionError::Invalid(_))), "duplicate projection");
    let split = Runner::new(store.clone())
        .projection(named("y"), config().partition(Partition::new(0, 2).unwrap()))
        .unwrap()
        .projection(named("y"), config().partition(Partition::new(0, 3).unwrap()));
    assert!(split.is_err(), "one projection, two partition counts");
    assert!(Runner::new(store.clone()).partitions(named("z"), 0, config()).is_err());
    assert!(Partition::new(3, 3).is_err());
    assert!(Partition::new(0, Partition::MAX_COUNT + 1).is_err());
    assert!(store.checkpoints().await.unwrap().is_empty(), "nothing ran");
    // The store refuses the same names on every backend, and stores the same error text.
    for name in ["", " ", "a\0b"] {
        let refused = store.checkpoint(name, Partition::all()).await;
        assert!(matches!(refused, Err(pupsourcing_core::Error::Validation(_))), "{name:?}");
    }
    let long = "p".repeat(256);
    assert!(store.set_checkpoint_error(&long, Partition::all(), None).await.is_err());
    store.set_checkpoint_error("x", Partition::all(), Some("bad\0byte")).await.unwrap();
    let stored = store.checkpoint("x", Partition::all()).await.unwrap();
    assert_eq!(stored.last_error.as_deref(), Some("bad\u{fffd}byte"));
}

/// Status: lag in events and time, the failed state, dead letters counted.
pub async fn status_reports_lag<S: ProjectionStore, M: ReadModel<S>>(store: S, model: M) {
    let events = append_events(&store, "Order", "Placed", 6).await;
    let projection = Recorder::new("watched", model.clone());
    let processor = Processor::new(store.clone(), projection, config().batch_size(4)).unwrap();
    assert!(matches!(processor.step().await.unwrap(), Progress::Handled { events: 4, .. }));
    let statuses = status(&store, &[("watched", Scope::all())]).await.unwrap();
    let watched = &statuses[0];
    assert_eq!((watched.checkpoint, watched.head), (events[3].position, events[5].position));
    assert_eq!((watched.lag_events, watched.state), (2, PartitionState::Behind));
    assert!(watched.lag.is_some());
    assert_eq!(watched.stall, None, "no write in flight");
    processor.run_until_caught_up().await.unwrap();
    let statuses = status(&store, &[]).await.unwrap();
    assert_eq!((statuses[0].lag_events, statuses[0].state), (0, PartitionState::Idle));
}

/// The name of the projection the crash test's child process runs.
const CRASH_PROJECTION: &str = "crash";

/// The child half of the crash test: runs the test projection slowly (5 ms per event, batches
/// of 10) until its process is killed.
pub async fn run_until_killed<S: ProjectionStore, M: ReadModel<S>>(store: S, model: M) {
    let mut projection = Recorder::new(CRASH_PROJECTION, model);
    projection.delay = Duration::from_millis(5);
    let processor = Processor::new(store, projection, config()).unwrap();
    processor.run(CancellationToken::new()).await.unwrap();
}

/// The parent half of the crash test: appends 300 events, starts the child process
/// (`spawn`, which must end up in [`run_until_killed`] on the same database), kills it with
/// SIGKILL in the middle of a batch, and checks that the read model holds exactly the events
/// up to the stored checkpoint (nothing of the killed batch); then a new processor completes
/// the projection with every event exactly once.
pub async fn killed_processor_resumes_exactly_once<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
    spawn: impl FnOnce() -> std::process::Child,
) {
    let events = append_events(&store, "Order", "Placed", 300).await;
    let mut child = crate::fixtures::ChildGuard(spawn());
    let started = Instant::now();
    while model.rows().await.len() < 25 {
        assert!(started.elapsed() < Duration::from_secs(60), "the child never got going");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Kill it at a random point of its batch (a batch takes about 50 ms).
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..50))).await;
    child.kill(); // SIGKILL on Unix

    let checkpoint = store.checkpoint(CRASH_PROJECTION, Partition::all()).await.unwrap();
    let applied: Vec<Uuid> =
        events.iter().filter(|e| e.position <= checkpoint.position).map(|e| e.event_id).collect();
    assert!(!applied.is_empty() && applied.len() < events.len(), "killed mid-run");
    assert_eq!(row_ids(&model).await, applied, "the rows are exactly those of committed batches");

    let projection = Recorder::new(CRASH_PROJECTION, model.clone());
    let processor = Processor::new(store.clone(), projection, config()).unwrap();
    let rest = processor.run_until_caught_up().await.unwrap();
    assert_eq!(rest as usize, events.len() - applied.len());
    assert_eq!(row_ids(&model).await, ids(&events), "every event exactly once");
    eprintln!("crash test: killed after {} events, resumed with {rest}", applied.len());
}

/// A processor task aborted in the middle of a batch (its future dropped): nothing of that
/// batch remains, and the next run applies every event exactly once.
pub async fn aborted_task_leaves_no_partial_batch<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let events = append_events(&store, "Order", "Placed", 60).await;
    let mut projection = Recorder::new("aborted", model.clone());
    projection.delay = Duration::from_millis(3);
    let processor = Processor::new(store.clone(), projection.clone(), config()).unwrap();
    let task = tokio::spawn(async move { processor.run(CancellationToken::new()).await });
    tokio::time::sleep(Duration::from_millis(45)).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // The dropped transaction rolls back when its connection is next used or closed.
    let processor = Processor::new(store.clone(), projection, config()).unwrap();
    processor.run_until_caught_up().await.unwrap();
    let rows = row_ids(&model).await;
    assert_eq!(rows, ids(&events), "every event exactly once");
}

/// An idle processor that polls once a minute handles a new event at once when `wake`
/// changes after commits (PostgreSQL: `PgEventStore::wakeups`).
pub async fn wake_ups_end_the_idle_wait<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
    wake: tokio::sync::watch::Receiver<()>,
) {
    let projection = Recorder::new("woken", model.clone());
    let config = config().poll_interval(Duration::from_secs(60));
    let processor = Processor::new(store.clone(), projection, config).unwrap().wake_on(wake);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { processor.run(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // now idle
    for round in 0..3 {
        let appended = Instant::now();
        append_events(&store, "Order", "Placed", 1).await;
        while model.rows().await.len() <= round {
            let waited = appended.elapsed();
            assert!(waited < Duration::from_secs(5), "not woken after {waited:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        eprintln!("wake-up {round}: handled {:?} after the append", appended.elapsed());
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

/// Writer A holds an uncommitted append while B commits after it: the projection handles
/// what is below A and waits (status names the stall); when A commits it handles A's event,
/// then B's. If A rolls back, it moves on past the hole.
pub async fn an_open_writer_holds_the_projection_back<S: ProjectionStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    let before = append_events(&store, "Order", "Placed", 3).await;
    let processor =
        Processor::new(store.clone(), Recorder::new("held", model.clone()), config()).unwrap();
    for commit_a in [true, false] {
        let mut a = store.begin().await.unwrap();
        store.append_in(&mut a, &new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap();
        let b = event("B");
        let b_id = b.event_id;
        let written = store.append(&new_stream(), ExpectedVersion::NoStream, &[b]).await.unwrap();
        let b_position = written.last_position();
        processor.run_until_caught_up().await.unwrap();
        let rows = row_ids(&model).await;
        assert!(!rows.contains(&b_id), "B is above the open writer A");
        assert!(rows.starts_with(&ids(&before)));
        let stall = store.stall().await.unwrap().expect("the stall is reported");
        assert!(stall.position < b_position);
        let statuses = status(&store, &[]).await.unwrap();
        let reported = statuses[0].stall.as_ref().expect("status shows the stall");
        assert_eq!((reported.position, reported.session), (stall.position, stall.session));
        assert_eq!(statuses[0].lag_events, 0, "nothing visible below the head is pending");
        let held = row_ids(&model).await.len();
        if commit_a {
            store.commit(a).await.unwrap();
        } else {
            store.rollback(a).await.unwrap();
        }
        processor.run_until_caught_up().await.unwrap();
        let rows = row_ids(&model).await;
        let added: Vec<Uuid> = rows[held..].to_vec();
        let handled_a = added.len() == 2;
        assert_eq!(handled_a, commit_a, "A's event is handled iff A committed");
        assert_eq!(added.last(), Some(&b_id), "then B");
        assert_eq!(store.stall().await.unwrap(), None);
    }
}

/// A processor running a shard under a fence (`FencedShard`) while the shard is given to
/// another worker: its next batch fails the fenced compare-and-set, and it stops with
/// `Error::ShardLost` instead of applying anything more; the new owner continues from the
/// shard's position, and every event is applied exactly once.
pub async fn a_fenced_processor_stops_when_its_shard_moves<S, M>(store: S, model: M)
where
    S: pupsourcing_core::coordination::CoordinationStore,
    M: ReadModel<S>,
{
    use pupsourcing_core::coordination::{ShardId, WorkerState};
    use pupsourcing_orchestrator::FencedShard;
    let events = append_events(&store, "Order", "Placed", 60).await;
    let shard = ShardId { projection: "fenced".into(), shard: 0, count: 1 };
    store.ensure_shards("fenced", 1, 0).await.unwrap();
    for worker in ["a", "b"] {
        store.register_worker(worker, 1, WorkerState::Running).await.unwrap();
    }
    let a = store.assign_shard(&shard, 0, Some("a")).await.unwrap().expect("assigned to a");
    let mut projection = Recorder::new("fenced", model.clone());
    projection.delay = Duration::from_millis(2);
    let fenced =
        |fence| FencedShard { shard: shard.clone(), fence, lease: Duration::from_secs(60) };
    let processor = Processor::new(store.clone(), projection.clone(), config().batch_size(5))
        .unwrap()
        .with_checkpointing(fenced(a.clone()));
    let running = tokio::spawn(async move { processor.run(CancellationToken::new()).await });
    while model.rows().await.len() < 10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let b = store.assign_shard(&shard, a.epoch, Some("b")).await.unwrap().expect("moved to b");
    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the fenced-out processor stops")
        .unwrap();
    match stopped {
        Err(ProjectionError::Store {
            source: pupsourcing_core::Error::ShardLost { .. }, ..
        }) => {}
        other => panic!("expected ShardLost, got {other:?}"),
    }
    let processor =
        Processor::new(store.clone(), projection, config()).unwrap().with_checkpointing(fenced(b));
    processor.run_until_caught_up().await.unwrap();
    assert_eq!(row_ids(&model).await, ids(&events), "every event exactly once");
}
