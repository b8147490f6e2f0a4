//! The orchestrator suite with real worker processes: a backend's test binary re-runs itself
//! as a worker ([`run_worker_process`], configured through environment variables) while the
//! parent appends events, kills, pauses and resumes the workers, or cuts their connections.
//!
//! Every worker runs the same three projections (every event, `Placed` only, `Shipped` only)
//! of 4 shards each, and writes one [`Ledger`] row per handled event: the event, the worker that
//! handled it, its shard, and the owner and epoch of that shard's row as the committing
//! transaction sees it. The row lock taken by the checkpoint's compare-and-set (first in the
//! batch's transaction) keeps that owner and epoch until the commit, so the ledger shows who
//! owned each shard at each commit: `check_ledger` then asserts that every event was applied
//! exactly once per projection and that only the owner of a shard ever committed to it.
//!
//! Short intervals: heartbeat 200 ms, stale threshold 3 s. Unix only (signals).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::process::Child;
use std::time::{Duration, Instant};

use pupsourcing_core::coordination::CoordinationStore;
use pupsourcing_core::projection::{Scope, murmur3_32};
use pupsourcing_core::{EventStore, ExpectedVersion, Position, RecordedEvent};
use pupsourcing_orchestrator::{Orchestrator, OrchestratorError, Recreate};
use pupsourcing_projection::{CancellationToken, HandlerError, ProcessorConfig, Projection};
use uuid::Uuid;

pub use crate::fixtures::{CHILD_DATABASE, spawner};
use crate::fixtures::{ChildGuard, event, new_stream};
use crate::orchestrator::{owners, positions_owned_by, taken_over, wait_for};

/// Environment variable: the worker id of a worker process.
pub const WORKER_ID: &str = "PUP_WORKER_ID";
/// Environment variable: how long a worker process's handler sleeps per event (ms; default 0).
pub const WORKER_DELAY_MS: &str = "PUP_WORKER_DELAY_MS";

/// The exit code of a worker process whose `run` returned [`OrchestratorError::Evicted`].
pub const EXIT_EVICTED: i32 = 3;
/// The exit code of a worker process whose `run` returned another error.
pub const EXIT_FAILED: i32 = 4;

const SHARDS: u32 = 4;
const HEARTBEAT: Duration = Duration::from_millis(200);
/// Above the 1 s of the task suite: on 2 busy cores, worker processes can miss heartbeats.
const STALE: Duration = Duration::from_secs(3);
/// The event types writers append; `Noted` is in the scope of `every_event` only.
const TYPES: [&str; 3] = ["Placed", "Shipped", "Noted"];

/// The projections every worker runs: name and scope.
fn projections() -> [(&'static str, Scope); 3] {
    [
        ("every_event", Scope::all()),
        ("placed", Scope::all().event_types(["Placed"])),
        ("shipped", Scope::all().event_types(["Shipped"])),
    ]
}

fn strategy() -> Recreate {
    Recreate::default()
        .heartbeat_interval(HEARTBEAT)
        .stale_threshold(STALE)
        .shards_per_projection(SHARDS)
}

fn config() -> ProcessorConfig {
    ProcessorConfig::default().batch_size(10).poll_interval(Duration::from_millis(10))
}

/// One handled event as the handler reports it to the [`Ledger`].
#[derive(Debug)]
pub struct Entry<'a> {
    /// The projection that handled it.
    pub projection: &'a str,
    /// The event.
    pub event: &'a RecordedEvent,
    /// The worker that handled it.
    pub worker: &'a str,
    /// Its shard (`event`'s partition hash modulo `count`).
    pub shard: u32,
    /// The projection's shard count.
    pub count: u32,
}

/// A ledger row: an [`Entry`] with the owner and epoch the shard row had in the committing
/// transaction (`None` when the row was missing or unowned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The projection.
    pub projection: String,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's position.
    pub position: Position,
    /// The worker that handled it.
    pub worker: String,
    /// The shard.
    pub shard: u32,
    /// The shard row's owner in the committing transaction.
    pub owner: Option<String>,
    /// The shard row's epoch in the committing transaction.
    pub epoch: Option<i64>,
}

/// A ledger table of the backend under test, without unique constraints (a double apply shows
/// as a second row).
pub trait Ledger<S: CoordinationStore>: Clone + Send + Sync + 'static {
    /// Inserts a row for `entry` in the caller's transaction, reading the owner and epoch of
    /// its shard row (projection, count, shard) in that same transaction.
    fn insert(
        &self,
        conn: &mut S::Connection,
        entry: &Entry<'_>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// The committed rows, in insertion order.
    fn rows(&self) -> impl Future<Output = Vec<LedgerRow>> + Send;
}

/// The test projection: writes a ledger row per event, as worker `worker`.
#[derive(Clone)]
struct Stamped<L> {
    name: String,
    scope: Scope,
    worker: String,
    delay: Duration,
    ledger: L,
}

/// The shard of an event appended by this suite (a stream, no partition key: the hash of its
/// aggregate id, as `pupsourcing_core::projection::partition_hash` computes it).
fn shard_of(event: &RecordedEvent) -> u32 {
    let (stream, _) = event.stream.as_ref().expect("the suite appends to streams");
    murmur3_32(stream.aggregate_id.as_bytes()) % SHARDS
}

impl<S: CoordinationStore, L: Ledger<S>> Projection<S> for Stamped<L> {
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
        let entry = Entry {
            projection: &self.name,
            event,
            worker: &self.worker,
            shard: shard_of(event),
            count: SHARDS,
        };
        self.ledger.insert(conn, &entry).await
    }
}

/// A worker `id` running the suite's projections, its handlers sleeping `delay` per event.
fn worker<S: CoordinationStore, L: Ledger<S>>(
    store: &S,
    ledger: &L,
    id: &str,
    delay: Duration,
) -> Orchestrator<S> {
    let mut builder = Orchestrator::builder(store.clone()).strategy(strategy()).worker_id(id);
    for (name, scope) in projections() {
        let worker = id.to_string();
        let (name, ledger) = (name.to_string(), ledger.clone());
        builder = builder.projection(Stamped { name, scope, worker, delay, ledger }, config());
    }
    builder.build().expect("valid settings")
}

/// The child half of this suite: one worker configured by [`WORKER_ID`] and
/// [`WORKER_DELAY_MS`], run until the process is killed. Exits the process when `run`
/// returns: 0 after a drain, [`EXIT_EVICTED`] when removed as stale, [`EXIT_FAILED`] otherwise.
pub async fn run_worker_process<S: CoordinationStore, L: Ledger<S>>(store: S, ledger: L) {
    let id = std::env::var(WORKER_ID).expect("the parent names the worker");
    let delay = std::env::var(WORKER_DELAY_MS).ok().and_then(|ms| ms.parse().ok()).unwrap_or(0);
    let worker = worker(&store, &ledger, &id, Duration::from_millis(delay));
    let outcome = worker.run(CancellationToken::new()).await;
    eprintln!("worker process {id}: run returned {outcome:?}");
    std::process::exit(match outcome {
        Ok(()) => 0,
        Err(OrchestratorError::Evicted { .. }) => EXIT_EVICTED,
        Err(_) => EXIT_FAILED,
    });
}

/// Starts a worker process: the backend's test binary re-run as [`run_worker_process`] on the
/// same database, with these environment variables set.
pub trait Spawn: Fn(&[(&'static str, String)]) -> Child {}
impl<F: Fn(&[(&'static str, String)]) -> Child> Spawn for F {}

/// The worker processes of a test, killed (SIGKILL) when dropped.
struct Workers<F: Spawn> {
    spawn: F,
    running: Vec<(String, ChildGuard)>,
    started: usize,
}

impl<F: Spawn> Workers<F> {
    fn new(spawn: F) -> Self {
        Self { spawn, running: Vec::new(), started: 0 }
    }

    /// Starts worker process `w<n>` with `vars` besides its id; returns the id.
    fn start(&mut self, vars: &[(&'static str, String)]) -> String {
        self.started += 1;
        let id = format!("w{}", self.started);
        let mut vars = vars.to_vec();
        vars.push((WORKER_ID, id.clone()));
        self.running.push((id.clone(), ChildGuard((self.spawn)(&vars))));
        id
    }

    /// SIGKILLs worker `index` and forgets it; returns its id.
    fn kill(&mut self, index: usize) -> String {
        let (id, mut child) = self.running.remove(index);
        child.kill();
        id
    }

    /// Workers whose process ended by itself, with their exit codes (removed from the list).
    fn exited(&mut self) -> Vec<(String, Option<i32>)> {
        let mut exited = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            match self.running[i].1.try_wait().expect("waitable") {
                Some(status) => {
                    let (id, _) = self.running.remove(i);
                    exited.push((id, status.code()));
                }
                None => i += 1,
            }
        }
        exited
    }

    fn pid(&self, id: &str) -> u32 {
        self.running.iter().find(|(w, _)| w == id).expect("a running worker").1.0.id()
    }
}

/// Sends `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Appends events of random types, one every `every` per writer task, until `stop`; returns
/// how many were appended.
fn writers<S: EventStore>(
    store: &S,
    tasks: usize,
    every: Duration,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<usize> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut appended = 0;
                while !stop.is_cancelled() {
                    append(&store, 1).await;
                    appended += 1;
                    tokio::time::sleep(every).await;
                }
                appended
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut total = 0;
        for handle in handles {
            total += handle.await.unwrap();
        }
        total
    })
}

/// Appends `n` events of random types, each to a new stream (so they spread over the shards).
async fn append<S: EventStore>(store: &S, n: usize) {
    for _ in 0..n {
        let event_type = TYPES[rand::random_range(0..TYPES.len())];
        store.append(&new_stream(), ExpectedVersion::NoStream, &[event(event_type)]).await.unwrap();
    }
}

/// The events each projection must handle, by projection: their ids, sorted.
async fn expected<S: EventStore>(store: &S) -> HashMap<&'static str, Vec<Uuid>> {
    let events = store.read_all(1, 1_000_000).await.unwrap();
    projections()
        .into_iter()
        .map(|(name, scope)| {
            let mut ids: Vec<Uuid> =
                events.iter().filter(|e| scope.matches(e)).map(|e| e.event_id).collect();
            ids.sort();
            (name, ids)
        })
        .collect()
}

/// Whether every projection has a ledger row for every event in its scope.
async fn caught_up<S: CoordinationStore, L: Ledger<S>>(store: &S, ledger: &L) -> bool {
    let expected = expected(store).await;
    let rows = ledger.rows().await;
    let mut handled: HashMap<&str, HashSet<Uuid>> = HashMap::new();
    for row in &rows {
        handled.entry(row.projection.as_str()).or_default().insert(row.event_id);
    }
    expected.iter().all(|(name, ids)| {
        ids.iter().all(|id| handled.get(name).is_some_and(|seen| seen.contains(id)))
    })
}

/// What the ledger showed: rows per worker and the number of (projection, shard, epoch)
/// ownerships that committed something.
#[derive(Debug)]
struct Summary {
    rows_by_worker: BTreeMap<String, usize>,
    ownerships: usize,
}

/// Asserts, over every committed batch: each projection applied every event in its scope
/// exactly once; the worker that committed a row owned its shard in that transaction (so one
/// worker per (projection, shard, epoch)); along a shard's positions its epochs never go back
/// (commits of two ownerships never interleave).
async fn check_ledger<S: CoordinationStore, L: Ledger<S>>(store: &S, ledger: &L) -> Summary {
    let rows = ledger.rows().await;
    for (name, ids) in expected(store).await {
        let mut handled: Vec<Uuid> =
            rows.iter().filter(|r| r.projection == name).map(|r| r.event_id).collect();
        handled.sort();
        let total = handled.len();
        handled.dedup();
        assert_eq!(total, handled.len(), "{name}: an event was applied more than once");
        assert_eq!(handled, ids, "{name}: every event in scope exactly once");
    }
    for row in &rows {
        assert_eq!(
            row.owner.as_deref(),
            Some(row.worker.as_str()),
            "a worker committed to a shard it did not own: {row:?}"
        );
    }
    let mut by_shard: BTreeMap<(&str, u32), Vec<&LedgerRow>> = BTreeMap::new();
    for row in &rows {
        by_shard.entry((row.projection.as_str(), row.shard)).or_default().push(row);
    }
    let mut ownerships = 0;
    for ((projection, shard), mut rows) in by_shard {
        rows.sort_by_key(|r| r.position);
        for pair in rows.windows(2) {
            assert!(
                pair[0].epoch <= pair[1].epoch,
                "{projection} shard {shard}: epochs interleave: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
        ownerships += rows.iter().map(|r| r.epoch).collect::<HashSet<_>>().len();
    }
    let mut rows_by_worker = BTreeMap::new();
    for row in &rows {
        *rows_by_worker.entry(row.worker.clone()).or_insert(0) += 1;
    }
    Summary { rows_by_worker, ownerships }
}

/// Waits until every event is in the ledger for every projection (limit 60 s).
async fn wait_caught_up<S: CoordinationStore, L: Ledger<S>>(store: &S, ledger: &L) {
    wait_for(Duration::from_secs(60), "every projection to catch up", || caught_up(store, ledger))
        .await;
}

/// Asserts that no worker process ended by itself.
fn assert_none_exited<F: Spawn>(workers: &mut Workers<F>) {
    let exited = workers.exited();
    assert!(exited.is_empty(), "worker processes ended by themselves: {exited:?}");
}

/// Three worker processes, started one after another while writers append, share the three
/// projections: each ends up owning shards, and the ledger shows every event applied exactly
/// once per projection, each commit by its shard's owner, ownerships never interleaved.
/// The joins move shards from busy workers, whose processors learn of it only at their next
/// tick: a commit of theirs in between must be fenced out.
pub async fn three_worker_processes_share_several_projections<S, L>(
    store: S,
    ledger: L,
    spawn: impl Spawn,
) where
    S: CoordinationStore,
    L: Ledger<S>,
{
    append(&store, 60).await;
    let stop = CancellationToken::new();
    let writing = writers(&store, 2, Duration::from_millis(10), &stop);
    let mut workers = Workers::new(spawn);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = workers.start(&[]);
        wait_for(Duration::from_secs(60), "the new worker to own shards", || async {
            owners(&store).await.get(&id).is_some_and(|n| *n > 0)
        })
        .await;
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let total = SHARDS as usize * projections().len();
    wait_for(Duration::from_secs(30), "an even split of every shard", || async {
        let owners = owners(&store).await;
        ids.iter().all(|id| owners.get(id) == Some(&(total / 3)))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let appended = writing.await.unwrap();
    wait_caught_up(&store, &ledger).await;
    assert_none_exited(&mut workers);
    let summary = check_ledger(&store, &ledger).await;
    println!("{appended} events appended while running; {summary:?}");
    assert!(ids.iter().all(|id| summary.rows_by_worker.contains_key(id)), "{summary:?}");
    assert!(summary.ownerships > total, "some shards committed under two owners: {summary:?}");
}

/// A worker process whose handler is slow (100 ms per event: batches take about a second) is
/// SIGSTOPped mid-batch. Past the stale threshold the other worker (a task of this process)
/// takes its shards and commits on them; the stopped worker's open transaction is ended by the
/// server meanwhile (the fenced batch's lease, the stale threshold: without it, on PostgreSQL
/// its locks would hold the stale removal, and so every takeover, until it resumes). Then
/// SIGCONT: the old worker
/// must find itself evicted and exit ([`EXIT_EVICTED`]) without a commit; the ledger holds
/// every event exactly once, each commit by its shard's owner. Prints the takeover time.
pub async fn a_paused_worker_cannot_commit<S, L>(store: S, ledger: L, spawn: impl Spawn)
where
    S: CoordinationStore,
    L: Ledger<S>,
{
    append(&store, 40).await;
    let mut workers = Workers::new(spawn);
    let slow = [(WORKER_DELAY_MS, "100".to_string())];
    let paused = workers.start(&slow);
    wait_for(Duration::from_secs(30), "the slow worker to commit", || async {
        ledger.rows().await.iter().any(|r| r.worker == paused)
    })
    .await;
    let stop = CancellationToken::new();
    let writing = writers(&store, 1, Duration::from_millis(20), &stop);
    let fast = worker(&store, &ledger, "fast", Duration::ZERO);
    let shutdown = CancellationToken::new();
    let run = crate::orchestrator::spawn(fast, &shutdown);
    // The split settled: every shard the slow worker still owns is one it keeps.
    let half = SHARDS as usize * projections().len() / 2;
    wait_for(Duration::from_secs(30), "the shards split evenly", || async {
        let owners = owners(&store).await;
        owners.get(&paused) == Some(&half) && owners.get("fast") == Some(&half)
    })
    .await;
    // Every shard of the slow worker is behind (about 12 events/s in, 10/s out): each of its
    // processors is mid-batch, in a transaction.
    tokio::time::sleep(Duration::from_millis(rand::random_range(500..1500))).await;
    let lost = positions_owned_by(&store, &paused).await;
    signal(workers.pid(&paused), "STOP");
    let stopped = Instant::now();
    let takeover = taken_over(&store, &lost, "fast", stopped).await;
    println!(
        "takeover from a paused worker: {takeover:?} from SIGSTOP to the first commit by the \
         new owner (heartbeat 200 ms, stale threshold 3 s, batch lease = the threshold)"
    );
    wait_for(Duration::from_secs(20), "the paused worker's removal", || async {
        store.workers().await.unwrap().iter().all(|w| w.id != paused)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(workers.pid(&paused), "CONT");
    let mut exit = None;
    wait_for(Duration::from_secs(10), "the resumed worker to exit", || {
        let exited = workers.exited();
        exit = exited.first().map(|(_, code)| *code);
        async move { !exited.is_empty() }
    })
    .await;
    assert_eq!(exit, Some(Some(EXIT_EVICTED)), "the resumed worker found itself evicted");
    stop.cancel();
    writing.await.unwrap();
    wait_caught_up(&store, &ledger).await;
    shutdown.cancel();
    crate::orchestrator::finished(run).await.unwrap();
    let summary = check_ledger(&store, &ledger).await;
    println!("{summary:?}");
}

/// The length of the chaos run: `PUP_CHAOS_SECS` seconds (default 60).
fn chaos_duration() -> Duration {
    let secs = crate::env_or("PUP_CHAOS_SECS", "60").parse().unwrap_or(60.0);
    Duration::from_secs_f64(secs)
}

/// For `chaos_duration`, three worker processes are kept alive while writers append: every
/// 0.5 to 3 s a random one is SIGKILLed and a new one started (a process that ended by itself
/// is replaced too, and reported). Then the writers stop, the survivors catch up, and the
/// ledger holds every event exactly once per projection, each commit by its shard's owner.
pub async fn chaos_kills_and_restarts_workers<S, L>(store: S, ledger: L, spawn: impl Spawn)
where
    S: CoordinationStore,
    L: Ledger<S>,
{
    let stop = CancellationToken::new();
    let writing = writers(&store, 2, Duration::from_millis(10), &stop);
    let mut workers = Workers::new(spawn);
    for _ in 0..3 {
        workers.start(&[]);
    }
    let (started, length) = (Instant::now(), chaos_duration());
    let (mut kills, mut ended) = (0, Vec::new());
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(rand::random_range(500..3000))).await;
        for exited in workers.exited() {
            ended.push(exited);
            workers.start(&[]);
        }
        let victim = rand::random_range(0..workers.running.len());
        workers.kill(victim);
        kills += 1;
        workers.start(&[]);
    }
    stop.cancel();
    let appended = writing.await.unwrap();
    wait_caught_up(&store, &ledger).await;
    let summary = check_ledger(&store, &ledger).await;
    println!(
        "chaos for {length:?}: {kills} SIGKILLs, {appended} events appended, processes that \
         ended by themselves: {ended:?}; {summary:?}"
    );
    assert!(kills >= 3, "the run killed workers ({kills})");
}

/// Two worker processes run while writers append; five times, every database session of the
/// worker processes is terminated (`kill` does it and returns how many sessions it ended and
/// how many of them were heartbeat connections). The workers keep running (no process ends,
/// both stay registered: their heartbeats recovered within the stale threshold), and the
/// ledger holds every event exactly once per projection, each commit by its shard's owner.
pub async fn a_dropped_connection_is_survived<S, L, K, F>(
    store: S,
    ledger: L,
    spawn: impl Spawn,
    kill: K,
) where
    S: CoordinationStore,
    L: Ledger<S>,
    K: Fn() -> F,
    F: Future<Output = (usize, usize)>,
{
    let stop = CancellationToken::new();
    let writing = writers(&store, 2, Duration::from_millis(10), &stop);
    let mut workers = Workers::new(spawn);
    let ids = [workers.start(&[]), workers.start(&[])];
    wait_for(Duration::from_secs(30), "both workers to own shards", || async {
        let owners = owners(&store).await;
        ids.iter().all(|id| owners.get(id).is_some_and(|n| *n > 0))
    })
    .await;
    let (mut sessions, mut heartbeats) = (0, 0);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(rand::random_range(300..900))).await;
        let (ended, beating) = kill().await;
        sessions += ended;
        heartbeats += beating;
        assert_none_exited(&mut workers);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let appended = writing.await.unwrap();
    wait_caught_up(&store, &ledger).await;
    assert_none_exited(&mut workers);
    let registered: Vec<String> =
        store.workers().await.unwrap().into_iter().map(|w| w.id).collect();
    assert!(ids.iter().all(|id| registered.contains(id)), "evicted: {registered:?}");
    let summary = check_ledger(&store, &ledger).await;
    println!(
        "{sessions} sessions terminated ({heartbeats} of them heartbeat connections), \
         {appended} events appended; {summary:?}"
    );
    assert!(sessions >= 5, "the test ended sessions ({sessions})");
    assert!(heartbeats >= 1, "the test ended a heartbeat connection");
}
