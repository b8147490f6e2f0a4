//! The orchestrator suite: workers (as tasks of one process, each with its own store clone)
//! sharing a projection through a real coordination store, checked against the read model of
//! [`crate::projections`] (one row per handled event, so a double apply shows).
//!
//! Short intervals: heartbeat 100 ms, stale threshold 1 s, 4 shards.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pupsourcing_core::coordination::{CoordinationStore, RecreatePhase, ShardId};
use pupsourcing_core::projection::Scope;
use pupsourcing_core::{EventStore, ExpectedVersion, RecordedEvent};
use pupsourcing_orchestrator::{Orchestrator, OrchestratorError, Recreate};
use pupsourcing_projection::{CancellationToken, HandlerError, ProcessorConfig, Projection};
use uuid::Uuid;

use crate::fixtures::{event, new_stream};
use crate::projections::{ReadModel, Recorder};

const SHARDS: u32 = 4;

pub(crate) fn strategy() -> Recreate {
    Recreate::default()
        .heartbeat_interval(Duration::from_millis(100))
        .stale_threshold(Duration::from_secs(1))
        .shards_per_projection(SHARDS)
}

pub(crate) fn config() -> ProcessorConfig {
    ProcessorConfig::default().batch_size(10).poll_interval(Duration::from_millis(10))
}

/// Appends `n` events, each to a new stream (so they spread over the shards).
async fn append<S: EventStore>(store: &S, n: usize) {
    for _ in 0..n {
        store.append(&new_stream(), ExpectedVersion::NoStream, &[event("Placed")]).await.unwrap();
    }
}

/// Appends `n` events, one every `every`, on a task.
fn append_slowly<S: EventStore>(
    store: &S,
    n: usize,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        for _ in 0..n {
            append(&store, 1).await;
            tokio::time::sleep(every).await;
        }
    })
}

/// Waits until `done` holds, checking every 10 ms; panics with `what` after `limit`.
pub(crate) async fn wait_for<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many shards each worker owns.
pub(crate) async fn owners<S: CoordinationStore>(store: &S) -> HashMap<String, usize> {
    let mut owners = HashMap::new();
    for shard in store.shards().await.unwrap() {
        if let Some(owner) = shard.owner {
            *owners.entry(owner).or_insert(0) += 1;
        }
    }
    owners
}

/// Every event of the log is in the read model exactly once.
pub(crate) async fn assert_exactly_once<S: EventStore, M: ReadModel<S>>(store: &S, model: &M) {
    let mut events: Vec<Uuid> =
        store.read_all(1, 1_000_000).await.unwrap().iter().map(|e| e.event_id).collect();
    let mut rows: Vec<Uuid> = model.rows().await.into_iter().map(|(id, _)| id).collect();
    let total = rows.len();
    events.sort();
    rows.sort();
    rows.dedup();
    assert_eq!(total, rows.len(), "an event was applied more than once");
    assert_eq!(rows, events, "every event exactly once");
}

/// The shards `owner` owns now, with their positions.
pub(crate) async fn positions_owned_by<S: CoordinationStore>(
    store: &S,
    owner: &str,
) -> HashMap<ShardId, i64> {
    let shards = store.shards().await.unwrap();
    shards
        .into_iter()
        .filter(|s| s.owner.as_deref() == Some(owner))
        .map(|s| (s.id, s.position))
        .collect()
}

/// Waits until `owner` owns one of the `lost` shards and has committed past its position
/// there; returns the time since `since` (panics after 20 s).
pub(crate) async fn taken_over<S: CoordinationStore>(
    store: &S,
    lost: &HashMap<ShardId, i64>,
    owner: &str,
    since: Instant,
) -> Duration {
    loop {
        let shards = store.shards().await.unwrap();
        let taken = shards.iter().any(|s| {
            s.owner.as_deref() == Some(owner)
                && lost.get(&s.id).is_some_and(|before| s.position > *before)
        });
        if taken {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(20), "the lost shards were not taken over");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) async fn rows_at_least<S: EventStore, M: ReadModel<S>>(model: &M, n: usize) -> bool {
    model.rows().await.len() >= n
}

fn worker<S: CoordinationStore>(
    store: &S,
    projection: impl Projection<S>,
    strategy: Recreate,
) -> Orchestrator<S> {
    Orchestrator::builder(store.clone())
        .strategy(strategy)
        .projection(projection, config())
        .build()
        .unwrap()
}

pub(crate) type Run = tokio::task::JoinHandle<(Result<(), OrchestratorError>, Instant)>;

/// Runs `orchestrator` on a task; the task returns its outcome and when it returned.
pub(crate) fn spawn<S: CoordinationStore>(
    orchestrator: Orchestrator<S>,
    shutdown: &CancellationToken,
) -> Run {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let outcome = orchestrator.run(shutdown).await;
        (outcome, Instant::now())
    })
}

pub(crate) async fn finished(run: Run) -> Result<(), OrchestratorError> {
    tokio::time::timeout(Duration::from_secs(15), run).await.expect("the worker returns").unwrap().0
}

/// Two workers run one projection over events appended before and during the run: the shards
/// split between them, and every event is applied exactly once.
pub async fn two_workers_split_the_shards<S: CoordinationStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append(&store, 50).await;
    let projection = Recorder::new("split", model.clone());
    let a = worker(&store, projection.clone(), strategy());
    let b = worker(&store, projection, strategy());
    let (a_id, b_id) = (a.worker_id().to_string(), b.worker_id().to_string());
    let shutdown = CancellationToken::new();
    let runs = [spawn(a, &shutdown), spawn(b, &shutdown)];
    let writer = append_slowly(&store, 50, Duration::from_millis(10));
    // Shards may be unowned for a tick while the workers start: wait for the split.
    wait_for(Duration::from_secs(20), "both workers to own shards, every shard owned", || async {
        let owners = owners(&store).await;
        owners.get(&a_id).is_some_and(|n| *n > 0)
            && owners.get(&b_id).is_some_and(|n| *n > 0)
            && owners.values().sum::<usize>() == SHARDS as usize
    })
    .await;
    println!("shards per worker: {:?}", owners(&store).await);
    writer.await.unwrap();
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 100)).await;
    shutdown.cancel();
    for run in runs {
        finished(run).await.unwrap();
    }
    assert_exactly_once(&store, &model).await;
}

/// A worker vanishes (its task is aborted: no cleanup at all). After the stale threshold it
/// is removed and the other worker takes its shards over; every event is still applied
/// exactly once. Prints the failover time: from the abort to the first commit by the new
/// owner on one of the lost shards.
pub async fn a_vanished_worker_is_replaced<S: CoordinationStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append(&store, 40).await;
    let projection = Recorder::new("failover", model.clone());
    let a = worker(&store, projection.clone(), strategy());
    let b = worker(&store, projection, strategy());
    let (a_id, b_id) = (a.worker_id().to_string(), b.worker_id().to_string());
    let shutdown = CancellationToken::new();
    let (a_run, b_run) = (spawn(a, &shutdown), spawn(b, &shutdown));
    wait_for(Duration::from_secs(20), "both workers to own shards and every event", || async {
        let owners = owners(&store).await;
        owners.get(&a_id).is_some_and(|n| *n > 0)
            && owners.get(&b_id).is_some_and(|n| *n > 0)
            && rows_at_least(&model, 40).await
    })
    .await;
    let lost = positions_owned_by(&store, &a_id).await;
    a_run.abort();
    let aborted = Instant::now();
    let writer = append_slowly(&store, 60, Duration::from_millis(20));
    let failover = taken_over(&store, &lost, &b_id, aborted).await;
    println!(
        "failover: {:?} from the abort to the first commit by the new owner \
         (heartbeat 100 ms, stale threshold 1 s)",
        failover
    );
    writer.await.unwrap();
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 100)).await;
    assert_eq!(owners(&store).await.get(&b_id), Some(&(SHARDS as usize)), "b owns every shard");
    let workers = store.workers().await.unwrap();
    assert!(workers.iter().all(|w| w.id != a_id), "the vanished worker was removed");
    shutdown.cancel();
    finished(b_run).await.unwrap();
    assert_exactly_once(&store, &model).await;
}

/// Records when each batch of the wrapped projection ran, under its worker's generation.
#[derive(Clone)]
pub(crate) struct Timed<P> {
    pub(crate) inner: P,
    pub(crate) generation: i64,
    pub(crate) log: Arc<Mutex<Vec<(i64, Instant, Instant)>>>,
}

impl<S: EventStore, P: Projection<S>> Projection<S> for Timed<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn scope(&self) -> Scope {
        self.inner.scope()
    }

    async fn handle(
        &self,
        conn: &mut S::Connection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        self.inner.handle(conn, event).await
    }

    async fn handle_batch(
        &self,
        conn: &mut S::Connection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let start = Instant::now();
        let outcome = self.inner.handle_batch(conn, events).await;
        self.log.lock().unwrap().push((self.generation, start, Instant::now()));
        outcome
    }
}

/// Recreate: a generation-1 worker is running when a generation-2 worker starts. The old one
/// drains and returns `Ok`; the new one owns no shard while the old one's row exists; no batch of generation 2 starts before the last batch of
/// generation 1 ended and the old worker returned; every event exactly once. Prints the
/// downtime (last old batch to first new batch).
pub async fn recreate_drains_the_old_generation_first<S: CoordinationStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append(&store, 60).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder::new("recreated", model.clone()).delayed(Duration::from_millis(20));
    let timed = |generation| Timed { inner: recorder.clone(), generation, log: log.clone() };
    let shutdown = CancellationToken::new();
    let old = worker(&store, timed(1), strategy().generation(1));
    let old_run = spawn(old, &shutdown);
    wait_for(Duration::from_secs(20), "generation 1 to handle events", || {
        rows_at_least(&model, 10)
    })
    .await;
    let new = worker(&store, timed(2), strategy().generation(2));
    let new_id = new.worker_id().to_string();
    // Watches the tables: the new worker owns no shard while an old worker's row exists.
    // Shards are read before workers, and a removed row never comes back, so an overlap seen
    // here was real.
    let watching = CancellationToken::new();
    let watcher = {
        let (store, watching) = (store.clone(), watching.clone());
        tokio::spawn(async move {
            let mut overlaps = 0;
            while !watching.is_cancelled() {
                let taken =
                    store.shards().await.unwrap().iter().any(|s| s.owner == Some(new_id.clone()));
                let old_left = store.workers().await.unwrap().iter().any(|w| w.generation < 2);
                overlaps += usize::from(taken && old_left);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            overlaps
        })
    };
    let new_run = spawn(new, &shutdown);
    let (outcome, old_returned) =
        tokio::time::timeout(Duration::from_secs(15), old_run).await.expect("old drains").unwrap();
    outcome.expect("the old worker drains and returns Ok");
    watching.cancel();
    let overlaps = watcher.await.unwrap();
    assert_eq!(overlaps, 0, "generation 2 owned shards while a generation-1 worker was registered");
    append(&store, 40).await;
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 100)).await;
    let generation = store.generation().await.unwrap();
    assert_eq!((generation.number, generation.phase), (2, RecreatePhase::Running));
    shutdown.cancel();
    finished(new_run).await.unwrap();
    let log = log.lock().unwrap().clone();
    let last_old = log.iter().filter(|b| b.0 == 1).map(|b| b.2).max().expect("gen 1 ran");
    let first_new = log.iter().filter(|b| b.0 == 2).map(|b| b.1).min().expect("gen 2 ran");
    assert!(last_old < first_new, "a generation-2 batch started before generation 1 ended");
    assert!(old_returned < first_new, "generation 2 ran before the old worker returned");
    println!("recreate downtime: {:?} (last old batch to first new batch)", first_new - last_old);
    assert_exactly_once(&store, &model).await;
}

/// A worker shut down gracefully releases its shards (no owner) and removes its row.
pub async fn graceful_shutdown_releases_the_shards<S: CoordinationStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append(&store, 20).await;
    let one = worker(&store, Recorder::new("graceful", model.clone()), strategy());
    let id = one.worker_id().to_string();
    let shutdown = CancellationToken::new();
    let run = spawn(one, &shutdown);
    wait_for(Duration::from_secs(20), "every shard owned and every event", || async {
        owners(&store).await.get(&id) == Some(&(SHARDS as usize)) && rows_at_least(&model, 20).await
    })
    .await;
    shutdown.cancel();
    finished(run).await.unwrap();
    let shards = store.shards().await.unwrap();
    assert_eq!(shards.len(), SHARDS as usize);
    assert!(shards.iter().all(|s| s.owner.is_none()), "released: {shards:?}");
    assert!(store.workers().await.unwrap().iter().all(|w| w.id != id), "row removed");
    assert_exactly_once(&store, &model).await;
}

/// Bad settings are refused by `build()` with typed errors, never a panic.
pub async fn bad_settings_are_refused<S: CoordinationStore, M: ReadModel<S>>(store: S, model: M) {
    let named = |name: &str| Recorder::new(name, model.clone());
    let built = Orchestrator::builder(store.clone()).build();
    assert!(matches!(built, Err(OrchestratorError::NoProjections)));
    let built = Orchestrator::builder(store.clone())
        .projection(named("twice"), config())
        .projection(named("twice"), config())
        .build();
    assert!(
        matches!(built, Err(OrchestratorError::DuplicateProjection { name }) if name == "twice")
    );
    for strategy in [
        strategy().shards_per_projection(0),
        strategy().shards_per_projection(pupsourcing_orchestrator::MAX_SHARDS + 1),
        strategy().stale_threshold(Duration::from_millis(100)),
        strategy().heartbeat_interval(Duration::ZERO),
        strategy().generation(0),
    ] {
        let built = Orchestrator::builder(store.clone())
            .strategy(strategy.clone())
            .projection(named("p"), config())
            .build();
        assert!(
            matches!(built, Err(OrchestratorError::InvalidSettings { .. })),
            "{strategy:?} was accepted"
        );
    }
    let built = Orchestrator::builder(store.clone()).projection(named(""), config()).build();
    assert!(matches!(built, Err(OrchestratorError::Projection(_))), "an empty name");
    let built =
        Orchestrator::builder(store.clone()).projection(named("p"), config().batch_size(0)).build();
    assert!(matches!(built, Err(OrchestratorError::Projection(_))), "batch size 0");
    let built = Orchestrator::builder(store).projection(named("p"), config()).worker_id("").build();
    assert!(matches!(built, Err(OrchestratorError::InvalidSettings { .. })), "empty worker id");
}

/// `reset` of a projection the orchestrator runs: its checkpoints are the shard rows, so the
/// reset must rewind those too. A worker projects every event and stops; the projection is
/// reset (read model cleared); a worker started again must replay the whole log, exactly once.
pub async fn reset_replays_an_orchestrated_projection<S: CoordinationStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append(&store, 30).await;
    let projection = Recorder::new("rewound", model.clone());
    let shutdown = CancellationToken::new();
    let run = spawn(worker(&store, projection.clone(), strategy()), &shutdown);
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 30)).await;
    shutdown.cancel();
    finished(run).await.unwrap();

    pupsourcing_projection::reset(&store, &projection).await.unwrap();
    assert!(model.rows().await.is_empty(), "the reset hook cleared the read model");
    append(&store, 10).await;
    let shutdown = CancellationToken::new();
    let run = spawn(worker(&store, projection, strategy()), &shutdown);
    let replayed = tokio::time::timeout(Duration::from_secs(10), async {
        while !rows_at_least(&model, 40).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    shutdown.cancel();
    finished(run).await.unwrap();
    assert!(replayed.is_ok(), "only {} of 40 events after the reset", model.rows().await.len());
    assert_exactly_once(&store, &model).await;
}

/// The projection name of the process-crash test.
const KILLED_PROJECTION: &str = "killed_worker";

/// The child half of the process-crash test: one worker of `KILLED_PROJECTION`, run until
/// its process is killed.
pub async fn run_worker_until_killed<S: CoordinationStore, M: ReadModel<S>>(store: S, model: M) {
    let worker = worker(&store, Recorder::new(KILLED_PROJECTION, model), strategy());
    let shutdown = CancellationToken::new();
    finished(spawn(worker, &shutdown)).await.unwrap();
}

/// A worker in a child process (`spawn` must start one that ends in
/// [`run_worker_until_killed`] on the same database) shares a projection with a worker of this
/// process, and is killed with SIGKILL: no cleanup, its connections cut by the kernel. After
/// the stale threshold this process's worker owns every shard, the dead worker's row is gone,
/// and every event, old and new, is applied exactly once. Prints the failover time.
pub async fn a_killed_worker_process_is_replaced<S, M>(
    store: S,
    model: M,
    spawn_child: impl FnOnce() -> std::process::Child,
) where
    S: CoordinationStore,
    M: ReadModel<S>,
{
    append(&store, 40).await;
    let b = worker(&store, Recorder::new(KILLED_PROJECTION, model.clone()), strategy());
    let b_id = b.worker_id().to_string();
    let shutdown = CancellationToken::new();
    let b_run = spawn(b, &shutdown);
    let mut child = crate::fixtures::ChildGuard(spawn_child());
    wait_for(
        Duration::from_secs(30),
        "the child's worker to own shards and every event",
        || async {
            let owners = owners(&store).await;
            owners.iter().any(|(id, n)| *id != b_id && *n > 0) && rows_at_least(&model, 40).await
        },
    )
    .await;
    let shards = store.shards().await.unwrap();
    let child_id = shards
        .iter()
        .filter_map(|s| s.owner.clone())
        .find(|owner| *owner != b_id)
        .expect("the child owns a shard");
    let lost = positions_owned_by(&store, &child_id).await;
    let writer = append_slowly(&store, 60, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..100))).await;
    child.kill(); // SIGKILL on Unix
    let killed = Instant::now();
    let failover = taken_over(&store, &lost, &b_id, killed).await;
    println!(
        "process failover: {failover:?} from SIGKILL to the first commit by the new owner \
         (heartbeat 100 ms, stale threshold 1 s)"
    );
    writer.await.unwrap();
    wait_for(Duration::from_secs(20), "every event", || rows_at_least(&model, 100)).await;
    assert_eq!(owners(&store).await.get(&b_id), Some(&(SHARDS as usize)), "b owns every shard");
    let workers = store.workers().await.unwrap();
    assert!(workers.iter().all(|w| w.id != child_id), "the killed worker was removed");
    shutdown.cancel();
    finished(b_run).await.unwrap();
    assert_exactly_once(&store, &model).await;
}

/// Every pooled connection is held elsewhere (`hold` takes them and keeps them for 2.5 s)
/// while a worker runs: its heartbeats, on a connection of their own
/// (`CoordinationStore::dedicated`), keep coming, so an observer removing workers stale after
/// 1 s (on `observer`, a store with its own pool) leaves it alone.
pub async fn heartbeats_survive_an_exhausted_pool<S, M, H, F>(
    store: S,
    model: M,
    observer: S,
    hold: H,
) where
    S: CoordinationStore,
    M: ReadModel<S>,
    H: FnOnce(Duration) -> F,
    F: Future<Output = ()>,
{
    let a = worker(&store, Recorder::new("starved", model), strategy());
    let id = a.worker_id().to_string();
    let shutdown = CancellationToken::new();
    let run = spawn(a, &shutdown);
    wait_for(Duration::from_secs(10), "the worker to register", || async {
        observer.workers().await.unwrap().iter().any(|w| w.id == id)
    })
    .await;
    let held = hold(Duration::from_millis(2500));
    let watch = async {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        observer.remove_stale_workers(Duration::from_secs(1)).await.unwrap()
    };
    let ((), removed) = tokio::join!(held, watch);
    assert!(!removed.contains(&id), "the worker's heartbeats were starved by its own pool");
    shutdown.cancel();
    finished(run).await.unwrap();
}

/// The shard count changes at a generation boundary: two generation-1 workers run a slow
/// projection on 2 shards (so their checkpoints drift apart) while a writer appends; two
/// generation-2 workers configured with 3 shards start. The old workers drain; the new
/// leader brings both old shards to one position and splits them into 3 there. Every event
/// is applied exactly once: none lost below the faster shard's checkpoint, none repeated.
pub async fn a_new_generation_changes_the_shard_count<S: CoordinationStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append(&store, 60).await;
    let recorder = Recorder::new("resharded", model.clone()).delayed(Duration::from_millis(3));
    let shutdown = CancellationToken::new();
    let generation = |g, shards| strategy().generation(g).shards_per_projection(shards);
    let old: Vec<Run> = (0..2)
        .map(|_| spawn(worker(&store, recorder.clone(), generation(1, 2)), &shutdown))
        .collect();
    let writer = append_slowly(&store, 80, Duration::from_millis(10));
    wait_for(Duration::from_secs(20), "generation 1 to handle events", || {
        rows_at_least(&model, 30)
    })
    .await;
    let new: Vec<Run> = (0..2)
        .map(|_| spawn(worker(&store, recorder.clone(), generation(2, 3)), &shutdown))
        .collect();
    for run in old {
        finished(run).await.expect("generation 1 drains and returns Ok");
    }
    let drained: Vec<i64> = store.shards().await.unwrap().iter().map(|s| s.position).collect();
    println!("old shards' checkpoints when generation 1 was gone: {drained:?}");
    writer.await.unwrap();
    wait_for(Duration::from_secs(30), "every event", || rows_at_least(&model, 140)).await;
    let shards = store.shards().await.unwrap();
    let counts: Vec<u32> = shards.iter().map(|s| s.id.count).collect();
    assert_eq!(counts, [3, 3, 3], "the old shards are replaced by 3: {shards:?}");
    shutdown.cancel();
    for run in new {
        finished(run).await.unwrap();
    }
    assert_exactly_once(&store, &model).await;
}

/// Status through the library: the worker with its generation, state and a fresh heartbeat;
/// every shard owned, with checkpoint, head and lag; a shard whose processor stopped on a
/// poison event shows as failed with the handler's error, and its lag counts the events
/// waiting behind it.
pub async fn status_reports_workers_and_shards<S: CoordinationStore, M: ReadModel<S>>(
    store: S,
    model: M,
) {
    append(&store, 20).await;
    let poison = store.read_all(1, 100).await.unwrap()[7].event_id;
    let projection = Recorder::new("watched", model.clone()).failing_on([poison]);
    let one = worker(&store, projection, strategy().generation(1));
    let id = one.worker_id().to_string();
    let shutdown = CancellationToken::new();
    let one = Arc::new(one);
    let run = {
        let (one, shutdown) = (one.clone(), shutdown.clone());
        tokio::spawn(async move { one.run(shutdown).await })
    };
    // Every event but the poison one (and those behind it in its shard) gets handled.
    let failed = |status: &pupsourcing_orchestrator::OrchestratorStatus| {
        status.shards.iter().any(|s| s.state == pupsourcing_orchestrator::ShardState::Failed)
    };
    let start = Instant::now();
    let status = loop {
        let status = one.status().await.unwrap();
        let settled = status.shards.iter().filter(|s| s.lag_events == 0).count();
        if failed(&status) && settled == SHARDS as usize - 1 {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no failed shard: {status:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((status.generation.number, status.generation.phase), (1, RecreatePhase::Running));
    let [me] = &status.workers[..] else { panic!("one worker: {:?}", status.workers) };
    assert_eq!((me.id.as_str(), me.generation), (id.as_str(), 1));
    assert!(me.heartbeat_age < Duration::from_secs(1), "fresh heartbeat: {me:?}");
    assert_eq!(status.shards.len(), SHARDS as usize);
    for shard in &status.shards {
        assert_eq!(shard.owner.as_deref(), Some(id.as_str()), "{shard:?}");
        assert_eq!(shard.head, 20);
        if shard.state == pupsourcing_orchestrator::ShardState::Failed {
            let error = shard.last_error.as_deref().unwrap_or_default();
            assert!(error.contains(&poison.to_string()), "the handler's error: {error}");
            assert!(shard.lag_events >= 1 && shard.lag.is_some(), "{shard:?}");
        } else {
            assert_eq!(shard.state, pupsourcing_orchestrator::ShardState::Idle, "{shard:?}");
            assert_eq!((shard.checkpoint, shard.last_error.as_deref()), (20, None));
        }
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), run).await.unwrap().unwrap().unwrap();
}

/// A worker configured with another shard count joins a running pool within its generation
/// (a stray old binary, a typo): it stops with [`OrchestratorError::ShardCountChanged`] and
/// changes no shard row, and the pool runs on. (A worker that created the rows of its own
/// count before it checked the stored ones left rows of two counts: every worker then
/// stopped, and no later generation could reshard the projection.)
pub async fn a_worker_with_another_shard_count_changes_nothing<S, M>(store: S, model: M)
where
    S: CoordinationStore,
    M: ReadModel<S>,
{
    append(&store, 20).await;
    let projection = Recorder::new("counted", model.clone());
    let shutdown = CancellationToken::new();
    let pool = spawn(worker(&store, projection.clone(), strategy()), &shutdown);
    wait_for(Duration::from_secs(20), "the first events", || rows_at_least(&model, 20)).await;
    let stray = worker(&store, projection, strategy().shards_per_projection(SHARDS + 1));
    let limit = Duration::from_secs(15);
    let outcome = tokio::time::timeout(limit, stray.run(CancellationToken::new())).await;
    let outcome = outcome.expect("the stray worker stops");
    assert!(matches!(outcome, Err(OrchestratorError::ShardCountChanged { .. })), "{outcome:?}");
    let shards = store.shards().await.unwrap();
    assert!(shards.iter().all(|s| s.id.count == SHARDS), "rows of another count: {shards:?}");
    append(&store, 20).await;
    wait_for(Duration::from_secs(20), "the pool to go on", || rows_at_least(&model, 40)).await;
    assert!(!pool.is_finished(), "the pool's worker stopped");
    shutdown.cancel();
    finished(pool).await.unwrap();
    assert_exactly_once(&store, &model).await;
}
