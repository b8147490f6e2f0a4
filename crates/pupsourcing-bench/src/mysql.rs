//! The workloads on MySQL/MariaDB: `MySqlEventStore` beside the plainest SQL writing or reading
//! the same event rows on the same server, in databases of their own dropped at the end.
//!
//! The floor's events table is the library's (`CREATE TABLE .. LIKE`: same columns, types and
//! indexes) with an `AUTO_INCREMENT` position: one autocommitted `INSERT` per append, versions
//! counted by the writer, no tag-index or head rows, no ordering of commits (a reader following
//! it could miss events: that is what the library pays for).

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use pupsourcing_core::{ConnectOptions, NewEvent, StoreConfig};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_mysql::sqlx::mysql::{MySqlPoolOptions, MySqlRow};
use pupsourcing_mysql::sqlx::{self, AssertSqlSafe, Connection as _, MySqlPool, Row as _};
use uuid::Uuid;

use crate::append::{self, Appender, LibraryAppender};
use crate::dcb::{ConditionalAppender, Outcomes};
use crate::decide::LifecycleAppender;
use crate::read::FloorEvent;
use crate::report::{Measurement, Report, Row};
use crate::{Args, BoxError, Progress, WARMUP, load_average};

/// The columns both sides write (the position is the table's, or the library's counter).
const COLUMNS: &str = "event_id, event_type, event_version, bounded_context, aggregate_type, \
     aggregate_id, aggregate_version, tags, payload, metadata, trace_id, correlation_id, \
     causation_id, created_at, partition_hash";

/// What the library side of an append scenario does.
#[derive(Clone, Copy)]
enum Workload {
    /// `append` with `ExpectedVersion::Any`, one stream per task.
    Any,
    /// Streams of this many events: `NoStream` first, then `Exact`.
    Lifecycle(i64),
    /// `append_if` under "nothing with my tag since my last append", one boundary per task.
    Conditional,
}

/// (name, tasks, events per append, workload).
const SCENARIOS: [(&str, usize, usize, Workload); 11] = [
    ("append 1 event, 1 task", 1, 1, Workload::Any),
    ("append 1 event, 8 tasks", 8, 1, Workload::Any),
    ("append 1 event, 32 tasks", 32, 1, Workload::Any),
    ("lifecycle, streams of 10, 1 task", 1, 1, Workload::Lifecycle(10)),
    ("lifecycle, streams of 10, 32 tasks", 32, 1, Workload::Lifecycle(10)),
    ("append 100 events, 1 task", 1, 100, Workload::Any),
    ("append 100 events, 8 tasks", 8, 100, Workload::Any),
    ("append 100 events, 32 tasks", 32, 100, Workload::Any),
    ("conditional append, 1 task", 1, 1, Workload::Conditional),
    ("conditional append, 8 tasks", 8, 1, Workload::Conditional),
    ("conditional append, 32 tasks", 32, 1, Workload::Conditional),
];

/// The databases of one run.
struct Fixture {
    pool: MySqlPool,
    lib: String,
    floor: String,
}

/// Runs the MySQL workloads on the server at `args.url`.
pub async fn run(args: &Args, progress: &dyn Progress) -> Result<Report, BoxError> {
    let suffix = Uuid::new_v4().simple().to_string()[..8].to_string();
    // One connection first, so that an unreachable server fails at once: the pool would retry
    // a refused connection until its acquire timeout, a minute.
    sqlx::MySqlConnection::connect(&args.url).await?.close().await?;
    let pool = MySqlPoolOptions::new()
        .max_connections(args.connections)
        .acquire_timeout(Duration::from_secs(60))
        .connect(&args.url)
        .await?;
    let fixture = Fixture {
        pool,
        lib: format!("pup_bench_lib_{suffix}"),
        floor: format!("pup_bench_floor_{suffix}"),
    };
    let outcome = run_on(args, &fixture, progress).await;
    for db in [&fixture.lib, &fixture.floor] {
        let drop = format!("DROP DATABASE IF EXISTS `{db}`");
        if let Err(err) = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&fixture.pool).await {
            progress.line(&format!("could not drop database {db}: {err}"));
        }
    }
    outcome
}

impl Fixture {
    /// A store on the library database (its own pool, as an application's would be).
    async fn store(&self, args: &Args) -> Result<MySqlEventStore, BoxError> {
        let config = StoreConfig::default().schema(&self.lib)?;
        let options = ConnectOptions::new().max_connections(args.connections);
        Ok(MySqlEventStore::connect_with(&args.url, config, options).await?)
    }

    /// Empty logs on both sides: the library's migrated, the floor's a copy of its events table.
    async fn reset(&self, args: &Args) -> Result<MySqlEventStore, BoxError> {
        let (lib, floor) = (&self.lib, &self.floor);
        for sql in [
            format!("DROP DATABASE IF EXISTS `{lib}`"),
            format!("DROP DATABASE IF EXISTS `{floor}`"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&self.pool).await?;
        }
        let store = self.store(args).await?;
        store.migrate().await?;
        for sql in [
            format!("CREATE DATABASE `{floor}`"),
            format!("CREATE TABLE `{floor}`.events LIKE `{lib}`.events"),
            format!(
                "ALTER TABLE `{floor}`.events MODIFY global_position BIGINT NOT NULL AUTO_INCREMENT"
            ),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&self.pool).await?;
        }
        Ok(store)
    }

    /// Appends `n` events through the library (8 writers, batches of 1,000), then copies them
    /// to the floor, so that both logs hold the same rows.
    async fn load(&self, store: &MySqlEventStore, n: u64) -> Result<(), BoxError> {
        const BATCH: u64 = 1000;
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut factory = crate::events::EventFactory::new(w as usize);
                    let mut appender = LibraryAppender::new(store);
                    let mut batch_no = w;
                    while batch_no * BATCH < n {
                        let size = BATCH.min(n - batch_no * BATCH) as usize;
                        appender.append(&factory.next_batch(size)).await?;
                        batch_no += 8;
                    }
                    Ok::<_, BoxError>(())
                })
            })
            .collect();
        for writer in writers {
            writer.await??;
        }
        let (lib, floor) = (&self.lib, &self.floor);
        let copy = format!(
            "INSERT INTO `{floor}`.events (global_position, {COLUMNS})
             SELECT global_position, {COLUMNS} FROM `{lib}`.events ORDER BY global_position"
        );
        sqlx::raw_sql(AssertSqlSafe(copy)).execute(&self.pool).await?;
        for db in [lib, floor] {
            let analyze = format!("ANALYZE TABLE `{db}`.events");
            sqlx::raw_sql(AssertSqlSafe(analyze)).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn server(&self) -> Result<String, BoxError> {
        let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(&self.pool).await?;
        let flush: String =
            sqlx::query_scalar("SELECT CAST(@@innodb_flush_log_at_trx_commit AS CHAR)")
                .fetch_one(&self.pool)
                .await?;
        let binlog: String =
            sqlx::query_scalar("SELECT CAST(@@log_bin AS CHAR)").fetch_one(&self.pool).await?;
        Ok(format!(
            "MySQL/MariaDB {version}, innodb_flush_log_at_trx_commit={flush}, log_bin={binlog}"
        ))
    }
}

async fn run_on(
    args: &Args,
    fixture: &Fixture,
    progress: &dyn Progress,
) -> Result<Report, BoxError> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let header = format!(
        "pupsourcing-bench (MySQL): {cores} cores, {}\n\
         load average at start: {}\n\
         pool {} connections per side, {} s measured per side in {} round(s), each after a {} s \
         warm-up, appends on \
         logs seeded with {} events, catch-up read of {} events in pages of {PAGE}\n\
         databases {} (library) and {} (floor)",
        fixture.server().await?,
        load_average(),
        args.connections,
        args.seconds,
        args.rounds,
        WARMUP.as_secs(),
        args.seed_events,
        args.read_events,
        fixture.lib,
        fixture.floor,
    );
    progress.line(&header);
    let duration = Duration::from_secs(args.seconds);
    let mut rows = Vec::new();
    if !args.skip_appends {
        progress.start(&format!("seeding {} events into each log", args.seed_events), None);
        let store = fixture.reset(args).await?;
        fixture.load(&store, args.seed_events).await?;
        store.close().await;
        let floor = Arc::new(FloorSql::new(&fixture.floor));
        for (i, (name, tasks, batch, workload)) in SCENARIOS.into_iter().enumerate() {
            if args.filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            progress.start(name, Some(2 * crate::side_time(args, duration)));
            let (mut library, mut floor_m) = (Measurement::default(), Measurement::default());
            for (round, slice) in crate::slices(args, duration) {
                // Alternate which side goes first, so that neither always runs on a warmer
                // server.
                for library_turn in [(i + round) % 2 == 0, (i + round) % 2 == 1] {
                    if library_turn {
                        let store = fixture.store(args).await?;
                        let m = library_side(&store, tasks, batch, workload, slice).await?;
                        crate::read::accumulate(&mut library, m);
                        store.close().await;
                    } else {
                        let appenders = (0..tasks).map(|_| FloorAppender {
                            pool: fixture.pool.clone(),
                            sql: floor.clone(),
                            version: 0,
                            id: Uuid::now_v7(),
                        });
                        let m = append::measure(appenders.collect(), batch, WARMUP, slice).await?;
                        crate::read::accumulate(&mut floor_m, m);
                    }
                }
            }
            let row = Row { name: name.to_string(), library, floor: floor_m, same_rows: None };
            progress.line(&row.throughput_line());
            rows.push(row);
        }
    }
    if !args.skip_read {
        progress.start(&format!("loading {} events into each log", args.read_events), None);
        let store = fixture.reset(args).await?;
        fixture.load(&store, args.read_events).await?;
        store.close().await;
        progress.start(&format!("catch-up read of {} events", args.read_events), None);
        let (mut library, mut floor) = (Measurement::default(), Measurement::default());
        for library_turn in [true, false, false, true] {
            if library_turn {
                let store = fixture.store(args).await?;
                crate::read::accumulate(
                    &mut library,
                    crate::read::library(store.clone(), args.read_events).await?,
                );
                store.close().await;
            } else {
                let m = read_floor(&fixture.pool, &fixture.floor, args.read_events).await?;
                crate::read::accumulate(&mut floor, m);
            }
        }
        let name = format!("catch-up read {}, pages of {PAGE}", args.read_events);
        let row = Row { name, library, floor, same_rows: None };
        progress.line(&format!("{}: ratio {:.2}", row.name, row.ratio()));
        rows.push(row);
    }
    let goals = goals(&rows);
    Ok(Report { header, rows, notes: Vec::new(), goals, load_average_at_end: load_average() })
}

async fn library_side(
    store: &MySqlEventStore,
    tasks: usize,
    batch: usize,
    workload: Workload,
    duration: Duration,
) -> Result<Measurement, BoxError> {
    let run = Uuid::new_v4().simple().to_string();
    match workload {
        Workload::Any => {
            let appenders = (0..tasks).map(|_| LibraryAppender::new(store.clone()));
            append::measure(appenders.collect(), batch, WARMUP, duration).await
        }
        Workload::Lifecycle(length) => {
            let appenders = (0..tasks).map(|_| LifecycleAppender::new(store.clone(), length));
            append::measure(appenders.collect(), batch, WARMUP, duration).await
        }
        Workload::Conditional => {
            let outcomes = Arc::new(Outcomes::default());
            let appenders = (0..tasks).map(|task| {
                ConditionalAppender::new(store.clone(), &run, task, 0, outcomes.clone())
            });
            append::measure(appenders.collect(), batch, WARMUP, duration).await
        }
    }
}

/// The floor's insert statements: one row, or a batch of rows, in one statement.
struct FloorSql {
    floor: String,
}

impl FloorSql {
    fn new(floor: &str) -> Self {
        Self { floor: floor.to_string() }
    }

    fn insert(&self, rows: usize) -> String {
        let row = format!("({})", vec!["?"; 15].join(", "));
        let values = vec![row; rows].join(", ");
        format!("INSERT INTO `{}`.events ({COLUMNS}) VALUES {values}", self.floor)
    }
}

/// The floor: one autocommitted `INSERT` of the batch's rows, versions counted by the task.
struct FloorAppender {
    pool: MySqlPool,
    sql: Arc<FloorSql>,
    id: Uuid,
    version: i64,
}

impl Appender for FloorAppender {
    async fn append<'a>(&'a mut self, events: &'a [NewEvent]) -> Result<usize, BoxError> {
        let sql = self.sql.insert(events.len());
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for event in events {
            self.version += 1;
            let tags = serde_json::to_string(&event.tags)?;
            let metadata = event.metadata.as_ref().map(serde_json::to_string).transpose()?;
            query = query
                .bind(event.event_id.as_bytes().to_vec())
                .bind(event.event_type.as_bytes().to_vec())
                .bind(event.event_version)
                .bind(event.bounded_context.as_ref().map(|c| c.as_bytes().to_vec()))
                .bind(b"Order".to_vec())
                .bind(self.id.as_bytes().to_vec())
                .bind(self.version)
                .bind(tags)
                .bind(event.payload.clone())
                .bind(metadata)
                .bind(event.trace_id.map(|u| u.as_bytes().to_vec()))
                .bind(event.correlation_id.map(|u| u.as_bytes().to_vec()))
                .bind(event.causation_id.map(|u| u.as_bytes().to_vec()))
                .bind(event.stored_created_at().timestamp_micros())
                .bind(0_i64);
        }
        let done = query.execute(&self.pool).await?;
        Ok(done.rows_affected() as usize)
    }
}

const PAGE: usize = crate::read::PAGE;

fn text(bytes: Option<Vec<u8>>) -> Result<Option<String>, BoxError> {
    Ok(bytes.map(String::from_utf8).transpose()?)
}

fn uuid(bytes: Option<Vec<u8>>) -> Result<Option<Uuid>, BoxError> {
    Ok(bytes.map(|b| Uuid::from_slice(&b)).transpose()?)
}

fn decode(row: &MySqlRow) -> Result<FloorEvent, BoxError> {
    let tags: String = row.try_get(8)?;
    let metadata: Option<String> = row.try_get(10)?;
    let micros: i64 = row.try_get(14)?;
    Ok(FloorEvent {
        position: row.try_get(0)?,
        event_id: uuid(Some(row.try_get(1)?))?.unwrap_or_default(),
        event_type: text(Some(row.try_get(2)?))?.unwrap_or_default(),
        event_version: row.try_get(3)?,
        bounded_context: text(row.try_get(4)?)?,
        aggregate_type: text(row.try_get(5)?)?,
        aggregate_id: uuid(row.try_get(6)?)?,
        aggregate_version: row.try_get(7)?,
        tags: serde_json::from_str(&tags)?,
        payload: row.try_get(9)?,
        metadata: metadata.map(|m| serde_json::from_str(&m)).transpose()?,
        trace_id: uuid(row.try_get(11)?)?,
        correlation_id: uuid(row.try_get(12)?)?,
        causation_id: uuid(row.try_get(13)?)?,
        created_at: DateTime::from_timestamp_micros(micros).ok_or("timestamp out of range")?,
    })
}

/// The whole log with a plain keyset-paged `SELECT` of the same columns.
async fn read_floor(pool: &MySqlPool, floor: &str, expected: u64) -> Result<Measurement, BoxError> {
    let sql: Arc<str> = format!(
        "SELECT global_position, event_id, event_type, event_version, bounded_context, \
         aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata, trace_id, \
         correlation_id, causation_id, created_at FROM `{floor}`.events \
         WHERE global_position > ? ORDER BY global_position LIMIT ?"
    )
    .into();
    crate::read::pages(expected, "floor", |after| {
        let sql = sql.clone();
        async move {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(after)
                .bind(PAGE as i64)
                .fetch_all(pool)
                .await?;
            crate::read::floor_page(rows, decode)
        }
    })
    .await
}

/// Issue 12's goals against this run.
fn goals(rows: &[Row]) -> String {
    let mut out = String::from("Goals (issue 12, MySQL):\n");
    for row in rows {
        let min = if row.name.starts_with("catch-up") { 0.7 } else { 0.8 };
        let verdict = if row.ratio() >= min { "MET" } else { "MISSED" };
        out.push_str(&format!(
            "  {}: {:.2}x floor (goal >= {min}x) {verdict}\n",
            row.name,
            row.ratio()
        ));
    }
    out
}
