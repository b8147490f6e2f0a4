//! Throughput and latency of `PgEventStore` against a raw-SQL floor on the same PostgreSQL.
//!
//! Every scenario runs twice in one process, through the library and as the plainest SQL that
//! writes or reads the same rows, and the table reports the ratio. See docs/benchmarks.md.
//!
//! ```text
//! cargo run --release -p pupsourcing-bench -- [--url URL] [--seconds N] [--read-events N]
//! pup bench --database-url postgres://... [--seconds N] [--json | --markdown]
//! ```
//!
//! A library with one entry point, [`run`], that returns a [`Report`]; the
//! `pupsourcing-bench` binary and `pup bench` are thin wrappers around it. The orchestrator
//! workloads (`orchestrate.rs`) re-run the calling binary as worker processes, as
//! [`Args::launcher`] says.

#![warn(missing_docs)]

mod append;
mod dcb;
mod decide;
mod events;
mod fixture;
mod mysql;
mod orchestrate;
mod project;
mod read;
mod report;

pub use orchestrate::WorkerArgs;
pub use report::{Measurement, Report, Row};

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;

use crate::append::{Appender, FloorAppender, FloorKind, FloorSql, LibraryAppender};
use crate::decide::LifecycleAppender;
use crate::fixture::Fixture;

/// Any error of a benchmark run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a run is set up: the workloads' options (command-line flags of both wrappers), the
/// database URL and how to start a worker process (set by the wrapper).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// PostgreSQL URL (set by the wrapper from its own flag).
    #[arg(skip)]
    pub url: String,
    /// How to re-run the calling binary as an orchestrator worker process (set by the
    /// wrapper).
    #[arg(skip)]
    pub launcher: Launcher,
    /// Measured seconds per side of each append scenario (after a 1 s warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Splits each side of the append, conditional and decision scenarios into this many
    /// slices of `--seconds / rounds`, each after a checkpoint and a warm-up of its own, and
    /// runs the sides' slices in turn (the order rotating), so that the machine's drift over a
    /// scenario falls on every side alike.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Events loaded for the catch-up read (at least 1000).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1000..))]
    pub read_events: u64,
    /// Events in each log before the append scenarios (then analyzed), so that appends run
    /// against a store with data and statistics; 0 measures a brand-new store.
    #[arg(long, default_value_t = 100_000)]
    pub seed_events: u64,
    /// Pool size, shared by both sides.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(40..))]
    pub connections: u32,
    /// Ping each connection when it leaves the pool (sqlx's default, and what
    /// `PgEventStore::connect` gets): one extra round trip per operation on both sides.
    #[arg(long)]
    pub test_before_acquire: bool,
    /// Run only the append scenarios whose name contains this text (e.g. "1 event").
    #[arg(long)]
    pub filter: Option<String>,
    /// Skip the append scenarios.
    #[arg(long)]
    pub skip_appends: bool,
    /// Skip the catch-up read.
    #[arg(long)]
    pub skip_read: bool,
    /// Skip the orchestrator workloads (catch-up through worker processes, failover, heartbeat
    /// load), which `--filter orchestr` runs alone.
    #[arg(long)]
    pub skip_orchestrator: bool,
    /// Events loaded for the orchestrator catch-up (default: `--read-events`; the log of the
    /// catch-up read is reused when the counts agree).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1000..))]
    pub orchestrator_events: Option<u64>,
    /// Shards per projection in the orchestrator workloads (default: the orchestrator's).
    #[arg(long, default_value_t = pupsourcing_orchestrator::Recreate::default().shards_per_projection,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub orchestrator_shards: u32,
    /// Failovers measured at the short threshold (heartbeat 250 ms, threshold 1 s).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub failover_rounds: u32,
    /// Also measure one failover at the default heartbeat (5 s) and threshold (30 s): about a
    /// minute.
    #[arg(long)]
    pub failover_default: bool,
    /// Orchestrators in the heartbeat load (fewer if the server lacks free connections: each
    /// holds one; the result is scaled to 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_workers: u64,
    /// Heartbeat interval of the heartbeat load, in milliseconds (the default is the
    /// orchestrator's).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval_ms: u64,
    /// The hidden flags of a worker process.
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// What the library side of an append scenario does.
#[derive(Clone, Copy)]
enum Workload {
    /// Appends to one stream per task with `ExpectedVersion::Any`.
    Any,
    /// Streams of this many events: the first appended with `NoStream`, the rest with `Exact`.
    Lifecycle(i64),
}

/// (name, concurrent tasks, events per append, workload). The floors are the same for every
/// workload: one autocommitted statement per append, no version check.
/// "1000 events (1000 tags)" is tag-heavy: 1,000 tags per append (one per event).
const APPEND_SCENARIOS: [(&str, usize, usize, Workload); 13] = [
    ("append 1 event, 1 task", 1, 1, Workload::Any),
    ("append 1 event, 8 tasks", 8, 1, Workload::Any),
    ("append 1 event, 32 tasks", 32, 1, Workload::Any),
    ("lifecycle, streams of 2, 1 task", 1, 1, Workload::Lifecycle(2)),
    ("lifecycle, streams of 2, 32 tasks", 32, 1, Workload::Lifecycle(2)),
    ("lifecycle, streams of 10, 1 task", 1, 1, Workload::Lifecycle(10)),
    ("lifecycle, streams of 10, 8 tasks", 8, 1, Workload::Lifecycle(10)),
    ("lifecycle, streams of 10, 32 tasks", 32, 1, Workload::Lifecycle(10)),
    ("append 100 events, 1 task", 1, 100, Workload::Any),
    ("append 100 events, 8 tasks", 8, 100, Workload::Any),
    ("append 100 events, 32 tasks", 32, 100, Workload::Any),
    ("append 1000 events (1000 tags), 1 task", 1, 1000, Workload::Any),
    ("lifecycle, streams of 10, batches of 10, 8 tasks", 8, 10, Workload::Lifecycle(10)),
];

pub(crate) const WARMUP: Duration = Duration::from_secs(1);

/// The program and leading arguments that re-run the caller as a worker process: the
/// worker's hidden `--worker-*` flags are appended.
#[derive(Debug, Clone, Default)]
pub struct Launcher {
    /// The executable [default: the current one].
    pub program: Option<std::path::PathBuf>,
    /// Arguments before the worker flags (the URL flag, a subcommand).
    pub args: Vec<String>,
}

/// Where a run reports what it is doing: the bench binary logs lines, `pup bench` draws
/// progress bars.
pub trait Progress: Send + Sync {
    /// A phase starts; `expected` is how long it should take, when known.
    fn start(&self, phase: &str, expected: Option<Duration>);
    /// A result or note (ends the phase in hand).
    fn line(&self, text: &str);
}

/// [`Progress`] as lines on standard error.
pub struct LogProgress;

impl Progress for LogProgress {
    fn start(&self, phase: &str, _expected: Option<Duration>) {
        eprintln!("{phase}...");
    }
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}

impl Args {
    /// True when the arguments ask for a worker process of the orchestrator workloads
    /// (the hidden `--worker-schema` flag): run [`worker`] instead of [`run`].
    pub fn is_worker(&self) -> bool {
        self.worker.worker_schema.is_some()
    }
}

/// Runs as a worker process of the orchestrator workloads, until standard input closes.
pub async fn worker(args: &Args) -> Result<(), BoxError> {
    orchestrate::worker(&args.url, &args.worker).await
}

/// Runs every selected workload on the database at `args.url`, in schemas of its own that it
/// drops at the end, and returns the measurements.
pub async fn run(args: &Args, progress: &dyn Progress) -> Result<Report, BoxError> {
    if args.url.starts_with("mysql:") || args.url.starts_with("mariadb:") {
        return mysql::run(args, progress).await;
    }
    // The pool retries a refused connection until its acquire timeout: one connection first,
    // so that an unreachable server fails at once with its cause.
    let first = sqlx::PgConnection::connect(&args.url).await?;
    let _ = first.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(args.connections)
        .test_before_acquire(args.test_before_acquire)
        .acquire_timeout(Duration::from_secs(60))
        .connect(&args.url)
        .await?;
    let fixture = Fixture::create(pool).await?;
    let outcome = run_on(args, &fixture, progress).await;
    if let Err(err) = fixture.drop_schemas().await {
        progress
            .line(&format!("could not drop schemas {} and {}: {err}", fixture.lib, fixture.floor));
    }
    outcome
}

async fn run_on(
    args: &Args,
    fixture: &Fixture,
    progress: &dyn Progress,
) -> Result<Report, BoxError> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let server = fixture.server_info().await?;
    let header = format!(
        "pupsourcing-bench: {cores} cores, {server}\n\
         load average at start: {}\n\
         pool {} connections (test_before_acquire={}), {} s measured per side in {} round(s), \
         each after a {} s warm-up, appends on logs seeded with {} events, catch-up read of {} events in pages of {}\n\
         schemas {} (library) and {} (floor)",
        load_average(),
        args.connections,
        args.test_before_acquire,
        args.seconds,
        args.rounds,
        WARMUP.as_secs(),
        args.seed_events,
        args.read_events,
        read::PAGE,
        fixture.lib,
        fixture.floor,
    );
    progress.line(&header);

    let mut rows = Vec::new();
    let duration = Duration::from_secs(args.seconds);
    let floor_sql = Arc::new(FloorSql::new(&fixture.floor));
    if !args.skip_appends {
        progress.start(&format!("seeding {} events into each log", args.seed_events), None);
        fixture.seed(args.seed_events).await?;
        for (i, (name, tasks, batch, workload)) in APPEND_SCENARIOS.into_iter().enumerate() {
            if args.filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            progress.start(name, Some(3 * side_time(args, duration)));
            let mut library = Measurement::default();
            let mut floor = Measurement::default();
            let mut same_rows = Measurement::default();
            for (round, slice) in slices(args, duration) {
                // Rotate which side goes first, so that no side always runs on a warmer server.
                let mut sides = [
                    Side::Library,
                    Side::Floor(FloorKind::Events),
                    Side::Floor(FloorKind::SameRows),
                ];
                sides.rotate_left((i + round) % 3);
                for side in sides {
                    fixture.checkpoint().await;
                    match side {
                        Side::Library => {
                            let store = fixture.store();
                            let m = match workload {
                                Workload::Any => {
                                    let appenders =
                                        (0..tasks).map(|_| LibraryAppender::new(store.clone()));
                                    measure(appenders.collect(), batch, slice).await?
                                }
                                Workload::Lifecycle(length) => {
                                    let appenders = (0..tasks)
                                        .map(|_| LifecycleAppender::new(store.clone(), length));
                                    measure(appenders.collect(), batch, slice).await?
                                }
                            };
                            read::accumulate(&mut library, m);
                        }
                        Side::Floor(kind) => {
                            let appenders = (0..tasks).map(|_| {
                                FloorAppender::new(fixture.pool.clone(), floor_sql.clone(), kind)
                            });
                            let m = measure(appenders.collect(), batch, slice).await?;
                            match kind {
                                FloorKind::Events => read::accumulate(&mut floor, m),
                                FloorKind::SameRows => read::accumulate(&mut same_rows, m),
                            }
                        }
                    }
                }
            }
            let row = Row { name: name.to_string(), library, floor, same_rows: Some(same_rows) };
            progress.line(&row.throughput_line());
            rows.push(row);
        }
    }

    if !args.skip_appends {
        rows.extend(wakeup_scenarios(args, fixture, duration, progress).await?);
        rows.extend(conditional_scenarios(args, fixture, &floor_sql, duration, progress).await?);
        rows.extend(decision_scenarios(args, fixture, &floor_sql, duration, progress).await?);
    }

    if !args.skip_read {
        progress.start(&format!("loading {} events into each log", args.read_events), None);
        fixture.load_log(args.read_events).await?;
        fixture.checkpoint().await;
        progress.start(&format!("catch-up read of {} events", args.read_events), None);
        // Two rounds per side, in the order library, floor, floor, library.
        let mut library = Measurement::default();
        let mut floor = Measurement::default();
        for library_turn in [true, false, false, true] {
            if library_turn {
                let m = read::library(fixture.store(), args.read_events).await?;
                read::accumulate(&mut library, m);
            } else {
                let m = read::floor(&fixture.pool, &fixture.floor, args.read_events).await?;
                read::accumulate(&mut floor, m);
            }
        }
        let name = format!("catch-up read {}, pages of {}", args.read_events, read::PAGE);
        let row = Row { name, library, floor: floor.clone(), same_rows: None };
        progress.line(&row.throughput_line());
        rows.push(row);

        rows.extend(projection_scenarios(args, fixture, &floor, progress).await?);

        // Tag query: a 10-event boundary out of the loaded log.
        let orders = args.read_events.min(100_000);
        progress.start("tag query", None);
        let library = dcb::tag_query_library(&fixture.store(), orders).await?;
        let floor = dcb::tag_query_floor(&fixture.pool, &fixture.lib, orders).await?;
        let name = format!("tag query, 10 of {} events", args.read_events);
        progress.line(&format!(
            "{name}: library p50 {:.2} ms, floor p50 {:.2} ms",
            library.percentile_ms(0.5),
            floor.percentile_ms(0.5)
        ));
        rows.push(Row { name, library, floor, same_rows: None });
    }

    let mut lines = Vec::new();
    if !args.skip_orchestrator {
        progress.start("orchestrator workloads (worker processes, failover, heartbeats)", None);
        let (orchestrated, notes) = orchestrate::run(args, fixture).await?;
        rows.extend(orchestrated);
        lines = notes;
    }

    progress.line("done");
    let goals = format!("{}{}", goals(&rows), orchestrate::goals(&rows));
    Ok(Report { header, rows, notes: lines, goals, load_average_at_end: load_average() })
}

/// Projection wake-ups: append throughput at 32 tasks with the store's NOTIFY after commits
/// on (library) and off (floor column), and append-to-handled latency at a steady 1,000
/// events/s with a processor woken by NOTIFY (library) or polling every 200 ms (floor column).
async fn wakeup_scenarios(
    args: &Args,
    fixture: &Fixture,
    duration: Duration,
    progress: &dyn Progress,
) -> Result<Vec<Row>, BoxError> {
    let mut rows = Vec::new();
    let name = "notifications on (library) vs off (floor), append 1 event, 32 tasks";
    if args.filter.as_ref().is_none_or(|f| name.contains(f.as_str())) {
        progress.start(name, Some(2 * (WARMUP + duration)));
        let (mut on, mut off) = (Measurement::default(), Measurement::default());
        for notify in [true, false, false, true] {
            fixture.checkpoint().await;
            let store = fixture.store().with_notifications(notify);
            let appenders = (0..32).map(|_| LibraryAppender::new(store.clone()));
            let m = measure(appenders.collect(), 1, duration / 2).await?;
            read::accumulate(if notify { &mut on } else { &mut off }, m);
        }
        let row = Row { name: name.to_string(), library: on, floor: off, same_rows: None };
        progress.line(&format!("{}: ratio {:.3}", row.name, row.ratio()));
        rows.push(row);
    }
    let name = "append-to-handled latency at 1000 events/s, NOTIFY (library) vs polling (floor)";
    if args.filter.as_ref().is_none_or(|f| name.contains(f.as_str())) {
        progress.start(name, Some(2 * duration));
        let store = fixture.store();
        let woken = project::latency(&store, true, 1000, duration).await?;
        let polled = project::latency(&store, false, 1000, duration).await?;
        let row = Row { name: name.to_string(), library: woken, floor: polled, same_rows: None };
        progress.line(&format!(
            "{}: NOTIFY p50 {:.1} ms p99 {:.1} ms; polling p50 {:.1} ms p99 {:.1} ms",
            row.name,
            row.library.percentile_ms(0.5),
            row.library.percentile_ms(0.99),
            row.floor.percentile_ms(0.5),
            row.floor.percentile_ms(0.99)
        ));
        rows.push(row);
    }
    Ok(rows)
}

/// Catch-up of fresh no-op projections over the loaded log (1, 2 and 4 partitions running at
/// once, batches of one read page) beside `read_floor`, the raw keyset read of the same rows
/// measured in this run; then a projection scoped to 1% of the log (one event type), whose
/// speed-up over the whole-log projection is printed.
async fn projection_scenarios(
    args: &Args,
    fixture: &Fixture,
    read_floor: &Measurement,
    progress: &dyn Progress,
) -> Result<Vec<Row>, BoxError> {
    use pupsourcing_core::projection::Scope;
    let mut rows = Vec::new();
    let store = fixture.store();
    let mut whole = Measurement::default();
    for partitions in [1, 2, 4] {
        progress.start(&format!("projection catch-up, {partitions} partition(s)"), None);
        let library = project::catch_up(&store, partitions, Scope::all(), read::PAGE).await?;
        if library.events != args.read_events {
            return Err(format!("the projection handled {} events", library.events).into());
        }
        if partitions == 1 {
            whole = library.clone();
        }
        let name =
            format!("projection catch-up, {partitions} partition(s), batches of {}", read::PAGE);
        let row = Row { name, library, floor: read_floor.clone(), same_rows: None };
        progress.line(&format!(
            "{}: {:.0} ev/s, ratio {:.2}",
            row.name,
            row.library.events_per_sec(),
            row.ratio()
        ));
        rows.push(row);
    }
    progress.start("projection catch-up scoped to 1%", None);
    let rare = Scope::all().event_types([project::RARE_TYPE]);
    let scoped = project::catch_up(&store, 1, rare, read::PAGE).await?;
    let speedup = whole.elapsed.as_secs_f64() / scoped.elapsed.as_secs_f64().max(1e-9);
    let name = format!(
        "projection catch-up scoped to 1% ({} events): {:.1}x faster than the whole log",
        scoped.events, speedup
    );
    progress.line(&name);
    rows.push(Row { name, library: scoped, floor: read_floor.clone(), same_rows: None });
    Ok(rows)
}

/// Conditional single-event appends beside the plain floor (the same insert, unconditional).
async fn conditional_scenarios(
    args: &Args,
    fixture: &Fixture,
    floor_sql: &Arc<FloorSql>,
    duration: Duration,
    progress: &dyn Progress,
) -> Result<Vec<Row>, BoxError> {
    let scenarios = [
        ("conditional append, 1 task", 1, 0),
        ("conditional append, 8 tasks", 8, 0),
        ("conditional append, 32 tasks", 32, 0),
        ("conditional append, 32 tasks, 1 in 10 contended", 32, 10),
    ];
    let mut rows = Vec::new();
    for (i, (name, tasks, hot_every)) in scenarios.into_iter().enumerate() {
        if args.filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        progress.start(name, Some(2 * side_time(args, duration)));
        let outcomes = Arc::new(dcb::Outcomes::default());
        let mut library = Measurement::default();
        let mut floor = Measurement::default();
        for (round, slice) in slices(args, duration) {
            // Boundaries of this slice's own: a new appender knows none of their heads.
            let run = uuid::Uuid::new_v4().simple().to_string();
            for library_turn in [(i + round) % 2 == 0, (i + round) % 2 == 1] {
                fixture.checkpoint().await;
                if library_turn {
                    let store = fixture.store();
                    let appenders = (0..tasks).map(|task| {
                        dcb::ConditionalAppender::new(
                            store.clone(),
                            &run,
                            task,
                            hot_every,
                            outcomes.clone(),
                        )
                    });
                    read::accumulate(&mut library, measure(appenders.collect(), 1, slice).await?);
                } else {
                    let appenders = (0..tasks).map(|_| {
                        let sql = floor_sql.clone();
                        FloorAppender::new(fixture.pool.clone(), sql, FloorKind::Events)
                    });
                    read::accumulate(&mut floor, measure(appenders.collect(), 1, slice).await?);
                }
            }
        }
        let name = format!("{name} ({:.1}% conflicts)", 100.0 * outcomes.conflict_rate());
        let row = Row { name, library, floor, same_rows: None };
        progress.line(&format!("{}: ratio {:.2}", row.name, row.ratio()));
        rows.push(row);
    }
    Ok(rows)
}

/// The decision path on disjoint boundaries (every condition failure is a false conflict):
/// read-decide-append loops against the plain insert floor, and the command executor (with and
/// without command records) against plain conditional appends, the write beneath it.
async fn decision_scenarios(
    args: &Args,
    fixture: &Fixture,
    floor_sql: &Arc<FloorSql>,
    duration: Duration,
    progress: &dyn Progress,
) -> Result<Vec<Row>, BoxError> {
    let mut rows = Vec::new();
    for (i, tasks) in [1, 8, 32].into_iter().enumerate() {
        for kind in [
            Decision::Loop,
            Decision::Executor { cache: true, records: true },
            Decision::Executor { cache: true, records: false },
            Decision::Executor { cache: false, records: true },
            Decision::Executor { cache: false, records: false },
        ] {
            let name = kind.name(tasks);
            if args.filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            progress.start(&name, Some(2 * side_time(args, duration)));
            let outcomes = Arc::new(dcb::Outcomes::default());
            let (mut library, mut floor) = (Measurement::default(), Measurement::default());
            for (round, slice) in slices(args, duration) {
                // Boundaries of this slice's own: new appenders know none of their heads.
                let run = uuid::Uuid::new_v4().simple().to_string();
                for library_turn in [(i + round) % 2 == 0, (i + round) % 2 == 1] {
                    fixture.checkpoint().await;
                    let store = fixture.store();
                    let m = match (library_turn, kind) {
                        (true, Decision::Loop) => {
                            let appenders = (0..tasks).map(|task| {
                                let outcomes = outcomes.clone();
                                decide::DecisionAppender::new(store.clone(), &run, task, outcomes)
                            });
                            measure(appenders.collect(), 1, slice).await?
                        }
                        (true, Decision::Executor { cache, records }) => {
                            let appenders = (0..tasks).map(|task| {
                                decide::ExecutorAppender::new(
                                    store.clone(),
                                    records,
                                    cache,
                                    &run,
                                    task,
                                    outcomes.clone(),
                                )
                            });
                            measure(appenders.collect(), 1, slice).await?
                        }
                        (false, Decision::Loop) => {
                            let appenders = (0..tasks).map(|_| {
                                let sql = floor_sql.clone();
                                FloorAppender::new(fixture.pool.clone(), sql, FloorKind::Events)
                            });
                            measure(appenders.collect(), 1, slice).await?
                        }
                        (false, Decision::Executor { .. }) => {
                            // Plain conditional appends on disjoint boundaries: their own counts.
                            let counts = Arc::new(dcb::Outcomes::default());
                            let appenders = (0..tasks).map(|task| {
                                let counts = counts.clone();
                                dcb::ConditionalAppender::new(store.clone(), &run, task, 0, counts)
                            });
                            measure(appenders.collect(), 1, slice).await?
                        }
                    };
                    read::accumulate(if library_turn { &mut library } else { &mut floor }, m);
                }
            }
            let conflicts = outcomes.conflicts.load(std::sync::atomic::Ordering::Relaxed);
            let name = format!("{name} ({conflicts} false conflicts)");
            let row = Row { name, library, floor, same_rows: None };
            progress.line(&format!("{}: ratio {:.2}", row.name, row.ratio()));
            rows.push(row);
        }
    }
    Ok(rows)
}

/// A decision-path scenario.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Read the boundary, decide, append under its condition.
    Loop,
    /// `CommandExecutor::execute`, with or without its boundary cache and command records.
    Executor { cache: bool, records: bool },
}

impl Decision {
    fn name(self, tasks: usize) -> String {
        let executor = match self {
            Decision::Loop => return format!("read-decide-append, {tasks} tasks"),
            Decision::Executor { cache: true, records: true } => "command executor",
            Decision::Executor { cache: true, records: false } => {
                "command executor without records"
            }
            Decision::Executor { cache: false, records: true } => "command executor without cache",
            Decision::Executor { cache: false, records: false } => {
                "command executor without cache or records"
            }
        };
        format!("{executor} vs conditional append, {tasks} tasks")
    }
}

/// Who writes in one measurement.
#[derive(Clone, Copy)]
enum Side {
    Library,
    Floor(FloorKind),
}

/// The 1, 5 and 15 minute load averages (Linux), to tell a quiet machine from a busy one.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn measure<A: Appender>(
    appenders: Vec<A>,
    batch: usize,
    duration: Duration,
) -> Result<Measurement, BoxError> {
    append::measure(appenders, batch, WARMUP, duration).await
}

/// The slices of one side of a scenario (`--rounds`): each round's number and measured time.
pub(crate) fn slices(args: &Args, duration: Duration) -> impl Iterator<Item = (usize, Duration)> {
    let rounds = args.rounds.max(1);
    (0..rounds as usize).map(move |round| (round, duration / rounds))
}

/// The time one side of a scenario takes, its warm-ups included.
pub(crate) fn side_time(args: &Args, duration: Duration) -> Duration {
    WARMUP * args.rounds.max(1) + duration
}

/// The goals of the issue, checked against this run's numbers.
fn goals(rows: &[Row]) -> String {
    let find = |prefix: &str| rows.iter().find(|r| r.name.starts_with(prefix));
    let mut out = String::from("Goals:\n");
    let mut ratio_goal = |label: &str, row: Option<&Row>, min: f64| match row {
        Some(r) => out.push_str(&format!(
            "  {label}: {:.2}x floor (goal >= {min}x) {}{}\n",
            r.ratio(),
            if r.ratio() >= min { "MET" } else { "MISSED" },
            r.same_rows_ratio().map_or(String::new(), |s| format!(
                "; {s:.2}x the same-rows floor {}",
                if s >= min { "MET" } else { "MISSED" }
            )),
        )),
        None => out.push_str(&format!("  {label}: not measured\n")),
    };
    ratio_goal("lifecycle (streams of 10), 1 task", find("lifecycle, streams of 10, 1 task"), 0.9);
    ratio_goal("lifecycle (streams of 10), 32 tasks", find("lifecycle, streams of 10, 32"), 1.5);
    ratio_goal("100-event batch, 32 tasks", find("append 100 events, 32 tasks"), 0.9);
    ratio_goal("executor, 1 task", find("command executor vs conditional append, 1 task"), 0.8);
    ratio_goal("executor, 32 tasks", find("command executor vs conditional append, 32"), 0.8);
    let uncached = "command executor without cache vs conditional append";
    ratio_goal("executor without cache, 1 task", find(&format!("{uncached}, 1 task")), 0.8);
    ratio_goal("executor without cache, 32 tasks", find(&format!("{uncached}, 32")), 0.8);
    ratio_goal("single-event append, 1 task", find("append 1 event, 1 task"), 0.8);
    ratio_goal("single-event append, 32 tasks", find("append 1 event, 32 tasks"), 0.8);
    ratio_goal("100-event batch, 8 tasks", find("append 100 events, 8 tasks"), 0.9);
    ratio_goal("catch-up read", find("catch-up read"), 0.7);
    ratio_goal("conditional append, 32 tasks", find("conditional append, 32 tasks ("), 0.7);
    ratio_goal("projection catch-up, 1 partition", find("projection catch-up, 1 partition"), 0.8);
    ratio_goal("appends with notifications on vs off, 32 tasks", find("notifications on"), 0.95);
    if let Some(r) = find("append-to-handled latency") {
        let (p50, p99) = (r.library.percentile_ms(0.5), r.library.percentile_ms(0.99));
        out.push_str(&format!(
            "  append-to-handled latency with NOTIFY: p50 {p50:.1} ms (goal < 10), p99 {p99:.1} ms (goal < 50) {}\n",
            if p50 < 10.0 && p99 < 50.0 { "MET" } else { "MISSED" }
        ));
    }
    if let Some(r) = find("tag query") {
        let p50 = r.library.percentile_ms(0.5);
        out.push_str(&format!(
            "  tag query p50: {p50:.2} ms (goal < 2 ms) {}\n",
            if p50 < 2.0 { "MET" } else { "MISSED" }
        ));
    }
    if let Some(r) = find("projection catch-up, 1 partition") {
        let rate = r.library.events_per_sec();
        out.push_str(&format!(
            "  projection catch-up rate: {rate:.0} events/s (goal >= 300000) {}\n",
            if rate >= 300_000.0 { "MET" } else { "MISSED" }
        ));
    }
    if let Some(r) = find("projection catch-up scoped") {
        out.push_str(&format!("  {} (goal >= 10x)\n", r.name));
    }
    if let Some(r) = find("catch-up read") {
        let rate = r.library.events_per_sec();
        out.push_str(&format!(
            "  catch-up read rate: {rate:.0} events/s (goal >= 300000) {}\n",
            if rate >= 300_000.0 { "MET" } else { "MISSED" }
        ));
    }
    out
}
