//! The orchestrator workloads (issue 11), on PostgreSQL:
//!
//! - **catch-up**: a fresh no-op projection caught up with the loaded log by 1, 2 and 4 worker
//!   processes (this binary re-run with the hidden `--worker-*` flags), each running one
//!   [`Orchestrator`], beside the same projection's processors alone (`project::catch_up`) in
//!   the same run;
//! - **failover**: two worker processes share a projection; one is killed with SIGKILL; the
//!   time until its shards are owned again, and until they have handled an event appended
//!   after the kill;
//! - **heartbeat load**: the database transactions per second of idle orchestrators (tasks of
//!   this process), above an idle baseline measured just before.
//!
//! See docs/benchmarks.md.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pupsourcing_core::coordination::{CoordinationStore, Shard, ShardId};
use pupsourcing_core::projection::Scope;
use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, Position, StoreConfig, StreamId};
use pupsourcing_orchestrator::{Orchestrator, Recreate};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_projection::{CancellationToken, ProcessorConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

use crate::fixture::Fixture;
use crate::project::{self, Noop};
use crate::report::{Measurement, Row};
use crate::{Args, BoxError, Launcher, read};

/// Workload names, matched by `--filter`.
pub const CATCH_UP: &str = "orchestrator catch-up";
pub const FAILOVER: &str = "orchestrator failover";
pub const HEARTBEAT: &str = "orchestrator heartbeat load";

/// How often the parent reads the shard rows while it waits for a state.
const POLL: Duration = Duration::from_millis(20);

/// The worker processes' heartbeat interval and stale threshold in the catch-up workload.
const CATCH_UP_HEARTBEAT: Duration = Duration::from_millis(200);
const CATCH_UP_THRESHOLD: Duration = Duration::from_secs(5);

/// The short failover setting.
const SHORT_HEARTBEAT: Duration = Duration::from_millis(250);
const SHORT_THRESHOLD: Duration = Duration::from_secs(1);

/// The event type of the failover projection's scope (none in the loaded log, so the
/// projection is caught up at once and only the probes appended by the workload are handled).
const FAILOVER_TYPE: &str = "FailoverProbe";

/// The settings of a worker process: hidden flags, passed by the parent when it re-runs its
/// binary as a worker ([`crate::Launcher`]).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct WorkerArgs {
    /// Run as a worker process of the orchestrator workloads on this schema (internal).
    #[arg(long, hide = true)]
    pub worker_schema: Option<String>,
    #[arg(long, hide = true, default_value = "")]
    worker_id: String,
    #[arg(long, hide = true, default_value = "")]
    worker_projection: String,
    /// The projection's only event type (default: every event).
    #[arg(long, hide = true)]
    worker_event_type: Option<String>,
    #[arg(long, hide = true, default_value_t = 200)]
    worker_heartbeat_ms: u64,
    #[arg(long, hide = true, default_value_t = 5000)]
    worker_threshold_ms: u64,
    #[arg(long, hide = true, default_value_t = 8)]
    worker_shards: u32,
}

impl WorkerArgs {
    fn new(
        schema: &str,
        projection: &str,
        shards: u32,
        heartbeat: Duration,
        threshold: Duration,
    ) -> Self {
        Self {
            worker_schema: Some(schema.to_string()),
            worker_id: fresh("bench-worker"),
            worker_projection: projection.to_string(),
            worker_event_type: None,
            worker_heartbeat_ms: heartbeat.as_millis() as u64,
            worker_threshold_ms: threshold.as_millis() as u64,
            worker_shards: shards,
        }
    }

    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--worker-schema={}", self.worker_schema.as_deref().unwrap_or_default()),
            format!("--worker-id={}", self.worker_id),
            format!("--worker-projection={}", self.worker_projection),
            format!("--worker-heartbeat-ms={}", self.worker_heartbeat_ms),
            format!("--worker-threshold-ms={}", self.worker_threshold_ms),
            format!("--worker-shards={}", self.worker_shards),
        ];
        args.extend(self.worker_event_type.iter().map(|t| format!("--worker-event-type={t}")));
        args
    }
}

/// A worker process: runs one orchestrator with a no-op projection until its standard input
/// closes (the parent closes it, or dies), drains, and prints the events it handled (batches
/// rolled back by a shard move included).
pub async fn worker(url: &str, spec: &WorkerArgs) -> Result<(), BoxError> {
    // `RUST_LOG=pupsourcing=info` shows the worker's log on the parent's stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let schema = spec.worker_schema.as_deref().unwrap_or_default();
    // Each processor may hold two connections (a batch's transaction and the read ahead).
    let pool = PgPoolOptions::new()
        .max_connections(2 * spec.worker_shards + 4)
        .acquire_timeout(Duration::from_secs(60))
        .connect(url)
        .await?;
    let store = PgEventStore::new(pool, StoreConfig::default().schema(schema)?);
    let handled = Arc::new(AtomicU64::new(0));
    let scope = match &spec.worker_event_type {
        Some(event_type) => Scope::all().event_types([event_type.clone()]),
        None => Scope::all(),
    };
    let projection = Noop::new(spec.worker_projection.clone(), scope, handled.clone());
    let strategy = Recreate::default()
        .heartbeat_interval(Duration::from_millis(spec.worker_heartbeat_ms))
        .stale_threshold(Duration::from_millis(spec.worker_threshold_ms))
        .shards_per_projection(spec.worker_shards);
    let orchestrator = Orchestrator::builder(store)
        .strategy(strategy)
        .projection(projection, ProcessorConfig::default().batch_size(read::PAGE))
        .worker_id(&spec.worker_id)
        .build()?;
    let shutdown = CancellationToken::new();
    let closed = shutdown.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        closed.cancel();
    });
    orchestrator.run(shutdown).await?;
    println!("handled {}", handled.load(Ordering::Relaxed));
    Ok(())
}

/// A worker process started by the parent; killed (SIGKILL) when dropped, so that a workload
/// failing midway leaves no process behind. (The testkit's `ChildGuard` does the same but is
/// private to it.)
struct WorkerProcess {
    id: String,
    child: std::process::Child,
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl WorkerProcess {
    fn spawn(launcher: &Launcher, spec: &WorkerArgs) -> Result<Self, BoxError> {
        let program = match &launcher.program {
            Some(program) => program.clone(),
            None => std::env::current_exe()?,
        };
        let child = Command::new(program)
            .args(&launcher.args)
            .args(spec.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        Ok(Self { id: spec.worker_id.clone(), child })
    }

    /// SIGKILL, and waits for the process to end.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An error when the process has exited: a worker runs until it is told to stop.
    fn check_alive(&mut self) -> Result<(), BoxError> {
        match self.child.try_wait()? {
            Some(status) => Err(format!("worker {} exited early ({status})", self.id).into()),
            None => Ok(()),
        }
    }

    /// Closes its standard input: the worker drains, releases its shards and removes its row.
    fn close(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits (at most a minute) for the closed worker to exit; the events it handled.
    async fn finish(mut self) -> Result<u64, BoxError> {
        let mut stdout = self.child.stdout.take().ok_or("the worker's stdout is gone")?;
        let read = tokio::task::spawn_blocking(move || {
            let mut out = String::new();
            stdout.read_to_string(&mut out).map(|_| out)
        });
        let out = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .map_err(|_| format!("worker {} did not drain within 60 s", self.id))???;
        let status = self.child.wait()?;
        let handled = out.trim().strip_prefix("handled ").and_then(|n| n.parse().ok());
        match handled {
            Some(n) if status.success() => Ok(n),
            _ => Err(format!("worker {} ended with {status} and printed {out:?}", self.id).into()),
        }
    }
}

/// Stops every worker (all drain at once) and returns the events they handled in total;
/// removes any worker row left behind, so that the next workload starts with none.
async fn stop_all(mut workers: Vec<WorkerProcess>, store: &PgEventStore) -> Result<u64, BoxError> {
    workers.iter_mut().for_each(WorkerProcess::close);
    let mut handled = 0;
    for worker in workers {
        handled += worker.finish().await?;
    }
    for left in store.workers().await? {
        eprintln!("note: removing worker row {} left behind", left.id);
        store.remove_worker(&left.id).await?;
    }
    Ok(handled)
}

/// Reads the shard rows of `projection` every [`POLL`] until `done` holds for them. Fails
/// when a worker process exits or `limit` passes.
async fn wait_for_shards(
    store: &PgEventStore,
    projection: &str,
    workers: &mut [WorkerProcess],
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&[Shard]) -> bool,
) -> Result<Vec<Shard>, BoxError> {
    let deadline = Instant::now() + limit;
    loop {
        let mut shards = store.shards().await?;
        shards.retain(|s| s.id.projection == projection);
        if done(&shards) {
            return Ok(shards);
        }
        for worker in workers.iter_mut() {
            worker.check_alive()?;
        }
        if Instant::now() > deadline {
            let workers: Vec<String> = store.workers().await?.into_iter().map(|w| w.id).collect();
            let shards: Vec<String> = shards
                .iter()
                .map(|s| {
                    format!("{} {:?} epoch {} at {}", s.id.shard, s.owner, s.epoch, s.position)
                })
                .collect();
            return Err(format!(
                "timed out after {limit:?} waiting for {what}; workers {workers:?}; shards {shards:?}"
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every one of the `count` shards has its checkpoint at `head` or beyond.
fn caught_up(shards: &[Shard], count: u32, head: Position) -> bool {
    shards.len() == count as usize && shards.iter().all(|s| s.position >= head)
}

/// A name unique to this run.
fn fresh(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Runs the orchestrator workloads that `--filter` selects. Returns the catch-up rows and the
/// failover and heartbeat-load lines.
pub async fn run(args: &Args, fixture: &Fixture) -> Result<(Vec<Row>, Vec<String>), BoxError> {
    let wanted = |name: &str| args.filter.as_ref().is_none_or(|f| name.contains(f.as_str()));
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    if wanted(CATCH_UP) {
        rows = catch_up(args, fixture).await?;
    }
    if wanted(FAILOVER) {
        lines.push(
            failovers(args, fixture, SHORT_HEARTBEAT, SHORT_THRESHOLD, args.failover_rounds)
                .await?,
        );
        if args.failover_default {
            let default = Recreate::default();
            let (heartbeat, threshold) = (default.heartbeat_interval, default.stale_threshold);
            lines.push(failovers(args, fixture, heartbeat, threshold, 1).await?);
        }
    }
    if wanted(HEARTBEAT) {
        lines.push(heartbeat_load(args, fixture).await?);
    }
    Ok((rows, lines))
}

/// What one orchestrated catch-up took.
struct Orchestrated {
    /// From the start of the worker processes until the first shard had an owner.
    first: Duration,
    /// From the start of the worker processes until every shard reached the head.
    done: Duration,
    /// Events handled by the workers, batches rolled back by a shard move included.
    handled: u64,
}

/// The catch-up rows: 1, 2 and 4 worker processes (from their start, and from the first shard
/// taken), and the processors alone with as many partitions as shards, each beside the
/// processors alone with one partition (measured first and last, and averaged).
async fn catch_up(args: &Args, fixture: &Fixture) -> Result<Vec<Row>, BoxError> {
    let events = args.orchestrator_events.unwrap_or(args.read_events);
    if args.skip_read || events != args.read_events {
        eprintln!("loading {events} events for the orchestrator catch-up...");
        fixture.load_log(events).await?;
    }
    let head: Position = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT max(global_position) FROM {}.events",
        fixture.lib
    )))
    .fetch_one(&fixture.pool)
    .await?;
    let store = fixture.store();
    let mut runner = Measurement::default();
    fixture.checkpoint().await;
    read::accumulate(&mut runner, runner_catch_up(&store, 1, events).await?);
    fixture.checkpoint().await;
    let sharded = runner_catch_up(&store, args.orchestrator_shards, events).await?;
    let mut measured = Vec::new();
    for workers in [1, 2, 4] {
        fixture.checkpoint().await;
        let run = orchestrated(args, fixture, workers, head).await?;
        eprintln!(
            "{CATCH_UP}, {workers} worker(s): first shard taken after {:.0} ms, done after \
             {:.2} s, {} events handled for {events}",
            run.first.as_secs_f64() * 1000.0,
            run.done.as_secs_f64(),
            run.handled
        );
        measured.push((workers, run));
    }
    fixture.checkpoint().await;
    read::accumulate(&mut runner, runner_catch_up(&store, 1, events).await?);
    let rows = catch_up_rows(args.orchestrator_shards, events, measured, sharded, runner);
    for row in &rows {
        eprintln!(
            "{}: {:.0} ev/s, {:.2}x the processor alone",
            row.name,
            row.library.events_per_sec(),
            row.ratio()
        );
    }
    Ok(rows)
}

/// Two rows per orchestrated run (the time from the start of the processes, and from the
/// first shard taken) and one for the processors alone with `shards` partitions, each against
/// `runner`, the processors alone with one partition.
fn catch_up_rows(
    shards: u32,
    events: u64,
    measured: Vec<(usize, Orchestrated)>,
    sharded: Measurement,
    runner: Measurement,
) -> Vec<Row> {
    let row = |name, elapsed| Row {
        name,
        library: Measurement { events, elapsed, latencies: Vec::new() },
        floor: runner.clone(),
        same_rows: None,
    };
    let mut rows = Vec::new();
    for (workers, run) in measured {
        let base = format!("{CATCH_UP}, {workers} worker(s), {shards} shards");
        let first_ms = run.first.as_secs_f64() * 1000.0;
        rows.push(row(format!("{base}, from start ({} handled)", run.handled), run.done));
        rows.push(row(
            format!("{base}, from first shard taken ({first_ms:.0} ms)"),
            run.done.saturating_sub(run.first),
        ));
    }
    let name = format!("{CATCH_UP} reference: processors alone, {shards} partitions");
    rows.push(Row { name, library: sharded, floor: runner.clone(), same_rows: None });
    rows
}

/// A fresh no-op projection caught up by `partitions` processors at once, without the
/// orchestrator (the existing projection catch-up).
async fn runner_catch_up(
    store: &PgEventStore,
    partitions: u32,
    events: u64,
) -> Result<Measurement, BoxError> {
    let measured = project::catch_up(store, partitions, Scope::all(), read::PAGE).await?;
    if measured.events != events {
        return Err(format!("the processors handled {} of {events} events", measured.events).into());
    }
    Ok(measured)
}

/// A fresh no-op projection caught up with `head` by `workers` worker processes started at
/// once.
async fn orchestrated(
    args: &Args,
    fixture: &Fixture,
    workers: usize,
    head: Position,
) -> Result<Orchestrated, BoxError> {
    let projection = fresh("bench_orchestrated");
    let shards = args.orchestrator_shards;
    let store = fixture.store();
    let started = Instant::now();
    let mut processes = (0..workers)
        .map(|_| {
            let spec = WorkerArgs::new(
                &fixture.lib,
                &projection,
                shards,
                CATCH_UP_HEARTBEAT,
                CATCH_UP_THRESHOLD,
            );
            WorkerProcess::spawn(&args.launcher, &spec)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut first = None;
    // Generous: 10,000 events/s would be a thirtieth of the processors' speed.
    let limit = Duration::from_secs(30 + head.max(0) as u64 / 10_000);
    wait_for_shards(&store, &projection, &mut processes, limit, "every shard at the head", |s| {
        if first.is_none() && s.iter().any(|s| s.owner.is_some()) {
            first = Some(started.elapsed());
        }
        caught_up(s, shards, head)
    })
    .await?;
    let done = started.elapsed();
    let handled = stop_all(processes, &store).await?;
    if handled < head as u64 {
        return Err(format!("the workers handled {handled} events of {head}").into());
    }
    Ok(Orchestrated { first: first.unwrap_or(done), done, handled })
}

/// What one failover took, from the SIGKILL.
struct Failover {
    /// Until every shard of the killed worker was owned by the survivor.
    owned: Duration,
    /// Until those shards had also handled an event appended after the kill.
    resumed: Duration,
    /// How many shards the killed worker owned.
    lost: usize,
}

/// `rounds` failovers at one setting, as one line.
async fn failovers(
    args: &Args,
    fixture: &Fixture,
    heartbeat: Duration,
    threshold: Duration,
    rounds: u32,
) -> Result<String, BoxError> {
    let mut runs = Vec::new();
    for round in 1..=rounds {
        let run = failover(args, fixture, heartbeat, threshold).await?;
        eprintln!(
            "{FAILOVER}, heartbeat {heartbeat:?}, threshold {threshold:?}, round {round}: {} shards owned again after {:.2} s, caught up after {:.2} s",
            run.lost,
            run.owned.as_secs_f64(),
            run.resumed.as_secs_f64()
        );
        runs.push(run);
    }
    let list = |f: fn(&Failover) -> Duration| {
        runs.iter().map(|r| format!("{:.2}", f(r).as_secs_f64())).collect::<Vec<_>>().join(", ")
    };
    Ok(format!(
        "{FAILOVER}, heartbeat {heartbeat:?}, stale threshold {threshold:?}, 2 worker processes, \
         one killed (SIGKILL): its shards owned again after {} s; an event appended after the \
         kill handled on them after {} s (bound: threshold + heartbeat = {:.2} s, plus a batch)",
        list(|r| r.owned),
        list(|r| r.resumed),
        (threshold + heartbeat).as_secs_f64()
    ))
}

/// Two worker processes share a projection scoped to the probe type; once they hold half the
/// shards each, one is killed with SIGKILL and a probe is appended.
async fn failover(
    args: &Args,
    fixture: &Fixture,
    heartbeat: Duration,
    threshold: Duration,
) -> Result<Failover, BoxError> {
    let projection = fresh("bench_failover");
    let shards = args.orchestrator_shards;
    let store = fixture.store();
    let specs: Vec<WorkerArgs> = (0..2)
        .map(|_| {
            let mut spec = WorkerArgs::new(&fixture.lib, &projection, shards, heartbeat, threshold);
            spec.worker_event_type = Some(FAILOVER_TYPE.to_string());
            spec
        })
        .collect();
    let (victim, survivor) = (specs[0].worker_id.clone(), specs[1].worker_id.clone());
    let mut processes = specs
        .iter()
        .map(|spec| WorkerProcess::spawn(&args.launcher, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let head = append_probe(&store).await?;
    let count = |s: &[Shard], id: &str| s.iter().filter(|s| s.owner.as_deref() == Some(id)).count();
    let steady = wait_for_shards(
        &store,
        &projection,
        &mut processes,
        threshold * 3 + Duration::from_secs(30),
        "two workers to share the shards and catch up",
        |s| {
            let (v, w) = (count(s, &victim), count(s, &survivor));
            caught_up(s, shards, head) && v > 0 && v + w == shards as usize && v.abs_diff(w) <= 1
        },
    )
    .await?;
    let lost: Vec<ShardId> = steady
        .into_iter()
        .filter(|s| s.owner.as_deref() == Some(victim.as_str()))
        .map(|s| s.id)
        .collect();
    let killed = Instant::now();
    processes.remove(0).kill();
    let after = append_probe(&store).await?;
    let taken = |s: &[Shard], at: Position| {
        lost.iter().all(|id| {
            s.iter().any(|s| {
                s.id == *id && s.owner.as_deref() == Some(survivor.as_str()) && s.position >= at
            })
        })
    };
    let limit = threshold + heartbeat * 3 + Duration::from_secs(30);
    wait_for_shards(
        &store,
        &projection,
        &mut processes,
        limit,
        "the killed worker's shards to be taken",
        |s| taken(s, 0),
    )
    .await?;
    let owned = killed.elapsed();
    wait_for_shards(&store, &projection, &mut processes, limit, "the probe to be handled", |s| {
        taken(s, after)
    })
    .await?;
    let resumed = killed.elapsed();
    stop_all(processes, &store).await?;
    Ok(Failover { owned, resumed, lost: lost.len() })
}

/// Appends one event of the failover projection's type; its position.
async fn append_probe(store: &PgEventStore) -> Result<Position, BoxError> {
    let stream = StreamId::new("FailoverProbe", uuid::Uuid::now_v7());
    let event = NewEvent::new(FAILOVER_TYPE, b"{}".to_vec());
    let appended = store.append(&stream, ExpectedVersion::Any, &[event]).await?;
    Ok(appended.positions[0])
}

/// The heartbeat load: `--heartbeat-workers` orchestrators (tasks of this process, each with
/// its own worker id and heartbeat connection) with one no-op projection over an empty log, at
/// `--heartbeat-interval-ms`; the database's transactions per second above an idle baseline,
/// scaled to 100 workers. In a scratch database when this role may create one, so that no
/// other client of the database counts.
async fn heartbeat_load(args: &Args, fixture: &Fixture) -> Result<String, BoxError> {
    let scratch = scratch_database(&args.url, &fixture.pool).await;
    let (pool, schema, place) = match &scratch {
        Some((name, pool)) => {
            (pool.clone(), "pup_bench_heartbeat".to_string(), format!("scratch database {name}"))
        }
        None => (
            fixture.pool.clone(),
            fixture.lib.clone(),
            "the bench's database (others' load counts too)".to_string(),
        ),
    };
    let outcome = heartbeat_in(args, &pool, &schema).await;
    if let Some((name, pool)) = scratch {
        pool.close().await;
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if let Err(err) = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&fixture.pool).await {
            eprintln!("could not drop database {name}: {err}");
        }
    }
    let (workers, measured, baseline, interval) = outcome?;
    let per_100 = (measured - baseline) * 100.0 / workers as f64;
    let per_tick = per_100 / 100.0 * interval.as_secs_f64();
    Ok(format!(
        "{HEARTBEAT}, heartbeat every {interval:?}: {workers} workers did {measured:.1} transactions/s \
         against an idle baseline of {baseline:.1}/s in {place}: {per_100:.1} statements/s per 100 \
         workers ({per_tick:.1} per worker per heartbeat interval; each coordination statement is its \
         own transaction){}",
        if (workers as u64) < args.heartbeat_workers {
            " (scaled from fewer workers: each holds a connection)"
        } else {
            ""
        }
    ))
}

/// Creates a database of its own and a pool on it; `None` when this role may not.
async fn scratch_database(url: &str, pool: &PgPool) -> Option<(String, PgPool)> {
    let name = fresh("pup_bench_heartbeat");
    let create = format!("CREATE DATABASE \"{name}\"");
    if let Err(err) = sqlx::raw_sql(AssertSqlSafe(create)).execute(pool).await {
        eprintln!("note: no scratch database for the heartbeat load ({err})");
        return None;
    }
    let options = url.parse::<PgConnectOptions>().ok()?.database(&name);
    let scratch = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options)
        .await;
    match scratch {
        Ok(scratch) => Some((name, scratch)),
        Err(err) => {
            eprintln!("note: cannot connect to the scratch database ({err})");
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\"");
            let _ = sqlx::raw_sql(AssertSqlSafe(drop)).execute(pool).await;
            None
        }
    }
}

/// The heartbeat load on `schema` of `pool`'s database: (workers, transactions/s with them,
/// idle transactions/s, interval).
async fn heartbeat_in(
    args: &Args,
    pool: &PgPool,
    schema: &str,
) -> Result<(usize, f64, f64, Duration), BoxError> {
    let store = PgEventStore::new(pool.clone(), StoreConfig::default().schema(schema)?);
    store.migrate().await?;
    let interval = Duration::from_millis(args.heartbeat_interval_ms);
    let workers = heartbeat_workers(pool, args.heartbeat_workers as usize).await?;
    let window = Duration::from_secs(args.seconds).max(interval * 6);
    eprintln!("{HEARTBEAT}: idle baseline for {window:?}...");
    let baseline = transactions_per_sec(pool, window / 2).await?;
    let (shutdown, mut tasks) = idle_orchestrators(&store, workers, interval)?;
    // Registration, the first ticks and the shard moves are start-up, not steady load.
    tokio::time::sleep(interval * 3).await;
    let registered = store.workers().await?.len();
    if registered != workers {
        shutdown.cancel();
        return Err(format!("{registered} of {workers} orchestrators registered").into());
    }
    eprintln!("{HEARTBEAT}: {workers} workers for {window:?}...");
    let measured = transactions_per_sec(pool, window).await;
    shutdown.cancel();
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((workers, measured?, baseline, interval))
}

/// Starts `workers` orchestrators as tasks on `store`, each with its own worker id and one
/// no-op projection (the same for all), heartbeating every `interval`; cancel the token to
/// stop them.
fn idle_orchestrators(
    store: &PgEventStore,
    workers: usize,
    interval: Duration,
) -> Result<(CancellationToken, Orchestrators), BoxError> {
    let strategy = Recreate::default()
        .heartbeat_interval(interval)
        .stale_threshold(Recreate::default().stale_threshold.max(interval * 6));
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let handled = Arc::new(AtomicU64::new(0));
    let projection = fresh("bench_heartbeat");
    for i in 0..workers {
        // Processors poll hourly: the load measured is the orchestrators' own.
        let config = ProcessorConfig::default().poll_interval(Duration::from_secs(3600));
        let orchestrator = Orchestrator::builder(store.clone())
            .strategy(strategy.clone())
            .projection(Noop::new(projection.clone(), Scope::all(), handled.clone()), config)
            .worker_id(format!("bench-heartbeat-{i}"))
            .build()?;
        let token = shutdown.clone();
        tasks.spawn(async move { orchestrator.run(token).await });
    }
    Ok((shutdown, tasks))
}

/// Orchestrator tasks, each ending with its `run`'s outcome.
type Orchestrators = tokio::task::JoinSet<Result<(), pupsourcing_orchestrator::OrchestratorError>>;

/// As many orchestrators as asked, or fewer so that their heartbeat connections (one each) fit
/// in the server's free connections with room to spare.
async fn heartbeat_workers(pool: &PgPool, wanted: usize) -> Result<usize, BoxError> {
    let free: i64 = sqlx::query_scalar(
        "SELECT current_setting('max_connections')::bigint
              - current_setting('superuser_reserved_connections')::bigint
              - (SELECT count(*) FROM pg_stat_activity)",
    )
    .fetch_one(pool)
    .await?;
    // The shared pool (10), the worker processes' leftovers and other clients.
    let room = usize::try_from(free - 25).unwrap_or(0);
    if room == 0 {
        return Err(format!("only {free} free connections on the server").into());
    }
    if room < wanted {
        eprintln!(
            "note: {wanted} heartbeat workers do not fit in {free} free connections: running {room}, scaled to 100"
        );
    }
    Ok(wanted.min(room))
}

/// The database's committed and rolled-back transactions per second over `window`.
/// (PostgreSQL flushes a backend's counts within about a second when it is idle, up to ten
/// when busy; in a steady load that delay is the same at both ends of the window.)
async fn transactions_per_sec(pool: &PgPool, window: Duration) -> Result<f64, BoxError> {
    let count = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database
              WHERE datname = current_database()",
        )
        .fetch_one(pool)
    };
    let (before, started) = (count().await?, Instant::now());
    tokio::time::sleep(window).await;
    let after = count().await?;
    Ok((after - before) as f64 / started.elapsed().as_secs_f64())
}

/// The orchestrator goal lines for this run's rows.
pub fn goals(rows: &[Row]) -> String {
    let mut out = String::new();
    let one_worker = |suffix: &str| {
        rows.iter().find(|r| {
            r.name.starts_with(&format!("{CATCH_UP}, 1 worker(s)")) && r.name.contains(suffix)
        })
    };
    for (label, suffix) in
        [("from start", ", from start"), ("from the first shard taken", ", from first shard")]
    {
        if let Some(r) = one_worker(suffix) {
            out.push_str(&format!(
                "  orchestrator catch-up at 1 worker, {label}: {:.2}x the processor alone (goal >= 0.9x) {}\n",
                r.ratio(),
                if r.ratio() >= 0.9 { "MET" } else { "MISSED" }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// A wrapper's command line around the workloads' flags.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// The worker process parses back exactly the settings its parent passed.
    #[test]
    fn worker_flags_round_trip() {
        let mut spec = WorkerArgs::new(
            "pup_bench_x_lib",
            "bench_failover_1",
            4,
            Duration::from_millis(250),
            Duration::from_secs(1),
        );
        spec.worker_event_type = Some(FAILOVER_TYPE.to_string());
        for spec in [spec.clone(), WorkerArgs { worker_event_type: None, ..spec }] {
            let argv = ["pupsourcing-bench".to_string()].into_iter().chain(spec.to_args());
            assert_eq!(Cli::try_parse_from(argv).unwrap().args.worker, spec);
        }
    }
}
