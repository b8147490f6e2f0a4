//! The orchestrator's coordination on SQLite ([`CoordinationStore`]): workers and their
//! heartbeats, the Recreate generation, and shards owned under an epoch that fences every
//! commit.
//!
//! # Clock
//!
//! Every time here is SQLite's clock, read in SQL (`julianday('now')`, see the `{now}`
//! placeholder of `crate::sql`): heartbeats, registration, `updated_at` and the stale-worker
//! cutoff (`last_heartbeat < now - threshold`). That is the database clock the orchestrator
//! requires: an SQLite database is one file on one host, and every process sharing it reads that
//! host's clock, so no worker's own clock is ever compared with another's. Times are stored as
//! microseconds since the Unix epoch, UTC (millisecond resolution), like the crate's other
//! tables.
//!
//! # Writes
//!
//! Every write goes through the write pool (one connection for a store from
//! [`SqliteEventStore::connect`]), like appends and checkpoint writes, and every change is a
//! single compare-and-set statement or one `BEGIN IMMEDIATE` transaction: SQLite runs one writer
//! at a time, so two workers never both win. Removing workers (one, or the stale ones) releases
//! their shards in the same transaction (owner cleared, epoch bumped), so a batch that a removed
//! worker still commits is fenced out. Heartbeats queue for the write lock like every other
//! write: a write transaction that is held long (a long batch commit) delays them, so keep
//! batches' transactions well below the stale threshold.
//!
//! # Fencing
//!
//! [`CoordinationStore::advance_shard_in`] runs in the batch's own write transaction (from
//! [`pupsourcing_core::EventStore::begin`]), and moves the shard's checkpoint only if the row
//! still has the batch's start position, owner and epoch. Every change of owner bumps the
//! epoch, so a worker that lost its shard while paused finds nothing to update, and its batch
//! must be rolled back.

use std::time::Duration;

use chrono::{DateTime, Utc};

use pupsourcing_core::coordination::{
    CoordinationStore, Fence, Generation, RecreatePhase, Shard, ShardId, Worker, WorkerState,
    reshard_epoch, validate_reshard, validate_worker_id,
};
use pupsourcing_core::projection::{Partition, storable_text, validate_projection_name};
use pupsourcing_core::timeout::within as limited;
use pupsourcing_core::{Error, Position, Result, StoreConfig, validate_position};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::SqliteEventStore;
use crate::checkpoint::decode_time;
use crate::error::{CorruptRow, db};
use crate::sql::Statement;
use crate::store::BEGIN_WRITE;

/// The coordination statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct CoordinationSql {
    register_worker: Statement,
    heartbeat: Statement,
    delete_worker: Statement,
    delete_stale_workers: Statement,
    release_shards: Statement,
    workers: Statement,
    generation: Statement,
    begin_generation: Statement,
    set_phase: Statement,
    ensure_shards: Statement,
    shards: Statement,
    assign_shard: Statement,
    advance_shard: Statement,
    shard_error: Statement,
    projection_shards: Statement,
    delete_shards: Statement,
    create_shards: Statement,
    clock: Statement,
}

impl CoordinationSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        let s = |template| Statement::new(template, config);
        Self {
            register_worker: s(include_str!("register_worker.sql")),
            heartbeat: s(include_str!("heartbeat.sql")),
            delete_worker: s(include_str!("delete_worker.sql")),
            delete_stale_workers: s(include_str!("delete_stale_workers.sql")),
            release_shards: s(include_str!("release_shards.sql")),
            workers: s(include_str!("workers.sql")),
            generation: s(include_str!("generation.sql")),
            begin_generation: s(include_str!("begin_generation.sql")),
            set_phase: s(include_str!("set_phase.sql")),
            ensure_shards: s(include_str!("ensure_shards.sql")),
            shards: s(include_str!("shards.sql")),
            assign_shard: s(include_str!("assign_shard.sql")),
            advance_shard: s(include_str!("advance_shard.sql")),
            shard_error: s(include_str!("shard_error.sql")),
            projection_shards: s(include_str!("projection_shards.sql")),
            delete_shards: s(include_str!("delete_shards.sql")),
            create_shards: s(include_str!("create_shards.sql")),
            clock: s(include_str!("clock.sql")),
        }
    }
}

/// A worker id as every backend checks it (`validate_worker_id`).
fn check_worker(id: &str) -> Result<()> {
    Ok(validate_worker_id(id)?)
}

/// A shard must name a valid projection and be a valid partition (count 1 to
/// [`Partition::MAX_COUNT`], shard below the count).
fn check_shard(shard: &ShardId) -> Result<()> {
    validate_projection_name(&shard.projection)?;
    Partition::new(shard.shard, shard.count)?;
    Ok(())
}

/// A duration in whole microseconds, saturating.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn decode_worker(row: &SqliteRow, table: &str) -> Result<Worker> {
    let state: String = row.try_get("state").map_err(db)?;
    let state = WorkerState::parse(&state)
        .ok_or_else(|| CorruptRow::error(table, "state", format!("unknown state {state:?}")))?;
    Ok(Worker {
        id: row.try_get("worker_id").map_err(db)?,
        generation: row.try_get("generation").map_err(db)?,
        state,
        started_at: decode_time(row, table, "started_at")?,
        last_heartbeat: decode_time(row, table, "last_heartbeat")?,
    })
}

fn decode_generation(row: &SqliteRow, table: &str) -> Result<Generation> {
    let phase: String = row.try_get("phase").map_err(db)?;
    let phase = RecreatePhase::parse(&phase)
        .ok_or_else(|| CorruptRow::error(table, "phase", format!("unknown phase {phase:?}")))?;
    Ok(Generation {
        number: row.try_get("generation").map_err(db)?,
        phase,
        updated_at: decode_time(row, table, "updated_at")?,
    })
}

fn decode_shard(row: &SqliteRow, table: &str) -> Result<Shard> {
    let shard: i64 = row.try_get("shard").map_err(db)?;
    let count: i64 = row.try_get("shard_count").map_err(db)?;
    let corrupt = |reason: String| CorruptRow::error(table, "shard", reason);
    let (shard, count) = match (u32::try_from(shard), u32::try_from(count)) {
        (Ok(shard), Ok(count)) if Partition::new(shard, count).is_ok() => (shard, count),
        _ => return Err(corrupt(format!("shard {shard} of {count} is out of range"))),
    };
    Ok(Shard {
        id: ShardId { projection: row.try_get("projection_name").map_err(db)?, shard, count },
        owner: row.try_get("owner").map_err(db)?,
        epoch: row.try_get("epoch").map_err(db)?,
        position: row.try_get("position").map_err(db)?,
        updated_at: decode_time(row, table, "updated_at")?,
        last_error: row.try_get("last_error").map_err(db)?,
    })
}

impl SqliteEventStore {
    /// Runs `work` in a write transaction of its own on the write pool, committed on success
    /// and rolled back at once on failure.
    async fn write_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.write_pool().begin_with(BEGIN_WRITE).await.map_err(db)?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await.map_err(db)?;
                Ok(value)
            }
            Err(err) => {
                // Now, rather than queued for the connection's next use.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    /// Releases every shard owned by one of `workers` on `conn` (owner cleared, epoch bumped).
    async fn release_shards(&self, conn: &mut SqliteConnection, workers: &[String]) -> Result<()> {
        if workers.is_empty() {
            return Ok(());
        }
        let ids = serde_json::to_string(workers).map_err(Error::database)?;
        sqlx::query(self.coordination_sql.release_shards.sql())
            .bind(ids)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// The orchestrator's coordination on the store's database: see the module documentation of
/// `coordination` for the clock (SQLite's own, in SQL), the writes (the write pool, one
/// compare-and-set or one write transaction each) and fencing.
impl CoordinationStore for SqliteEventStore {
    /// The store itself: SQLite has one writer at a time, so a connection of its own would
    /// still wait for the write lock held by a batch transaction (and would poll for it rather
    /// than queue), which is no better than the store's write pool.
    async fn dedicated(&self) -> Result<Self> {
        Ok(self.clone())
    }

    /// One upsert through the write pool; `started_at` and the heartbeat are now by the database
    /// clock.
    async fn register_worker(
        &self,
        worker: &str,
        generation: i64,
        state: WorkerState,
    ) -> Result<()> {
        check_worker(worker)?;
        sqlx::query(self.coordination_sql.register_worker.sql())
            .bind(worker)
            .bind(generation)
            .bind(state.as_str())
            .execute(self.write_pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    /// One update through the write pool.
    async fn heartbeat(&self, worker: &str, state: WorkerState) -> Result<bool> {
        check_worker(worker)?;
        let done = sqlx::query(self.coordination_sql.heartbeat.sql())
            .bind(worker)
            .bind(state.as_str())
            .execute(self.write_pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases the worker's shards and deletes its row in one write transaction. Removing a
    /// worker that has no row still releases any shard that names it.
    async fn remove_worker(&self, worker: &str) -> Result<()> {
        check_worker(worker)?;
        let sql = &self.coordination_sql;
        self.write_transaction(async |conn: &mut SqliteConnection| {
            self.release_shards(conn, &[worker.to_string()]).await?;
            sqlx::query(sql.delete_worker.sql())
                .bind(worker)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// Deletes the stale rows and releases their shards in one write transaction: the cutoff is
    /// `now - threshold` by SQLite's clock. The ids come back sorted.
    async fn remove_stale_workers(&self, threshold: Duration) -> Result<Vec<String>> {
        let sql = &self.coordination_sql;
        self.write_transaction(async |conn: &mut SqliteConnection| {
            let mut removed: Vec<String> = sqlx::query_scalar(sql.delete_stale_workers.sql())
                .bind(micros(threshold))
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            removed.sort();
            self.release_shards(conn, &removed).await?;
            Ok(removed)
        })
        .await
    }

    /// Reads through the read pool.
    async fn workers(&self) -> Result<Vec<Worker>> {
        let table = self.config().tables.workers.as_str();
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(self.coordination_sql.workers.sql())
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
            rows.iter().map(|row| decode_worker(row, table)).collect()
        })
        .await
    }

    /// Reads through the read pool. [`SqliteEventStore::migrate`] creates the row at generation
    /// 0, running; a database without it reads the same (its `updated_at` is now).
    async fn generation(&self) -> Result<Generation> {
        let table = self.config().tables.recreate_lock.as_str();
        limited(self.config().timeouts.query, async {
            let row = sqlx::query(self.coordination_sql.generation.sql())
                .fetch_one(self.pool())
                .await
                .map_err(db)?;
            decode_generation(&row, table)
        })
        .await
    }

    /// One conditional upsert of the singleton row through the write pool.
    async fn begin_generation(&self, current: i64) -> Result<Option<i64>> {
        sqlx::query_scalar(self.coordination_sql.begin_generation.sql())
            .bind(current)
            .fetch_optional(self.write_pool())
            .await
            .map_err(db)
    }

    /// One conditional upsert of the singleton row through the write pool.
    async fn set_phase(&self, number: i64, phase: RecreatePhase) -> Result<bool> {
        let done: Option<i64> = sqlx::query_scalar(self.coordination_sql.set_phase.sql())
            .bind(number)
            .bind(phase.as_str())
            .fetch_optional(self.write_pool())
            .await
            .map_err(db)?;
        Ok(done.is_some())
    }

    /// One insert through the write pool. Fails with a validation error for an invalid
    /// projection name, a count of 0 or above [`Partition::MAX_COUNT`], or a negative start.
    async fn ensure_shards(&self, projection: &str, count: u32, start: Position) -> Result<()> {
        validate_projection_name(projection)?;
        pupsourcing_core::coordination::validate_shard_count(count)?;
        validate_position("shard start", start)?;
        sqlx::query(self.coordination_sql.ensure_shards.sql())
            .bind(projection)
            .bind(i64::from(count))
            .bind(start)
            .execute(self.write_pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Reads through the read pool.
    async fn shards(&self) -> Result<Vec<Shard>> {
        let table = self.config().tables.shards.as_str();
        limited(self.config().timeouts.query, async {
            let rows = sqlx::query(self.coordination_sql.shards.sql())
                .fetch_all(self.pool())
                .await
                .map_err(db)?;
            rows.iter().map(|row| decode_shard(row, table)).collect()
        })
        .await
    }

    /// One compare-and-set update through the write pool. Giving the shard to nobody returns a
    /// fence with an empty owner (no worker can commit under it).
    async fn assign_shard(
        &self,
        shard: &ShardId,
        epoch: i64,
        owner: Option<&str>,
    ) -> Result<Option<Fence>> {
        check_shard(shard)?;
        if let Some(owner) = owner {
            check_worker(owner)?;
        }
        let epoch: Option<i64> = sqlx::query_scalar(self.coordination_sql.assign_shard.sql())
            .bind(shard.projection.as_str())
            .bind(i64::from(shard.count))
            .bind(i64::from(shard.shard))
            .bind(epoch)
            .bind(owner)
            .fetch_optional(self.write_pool())
            .await
            .map_err(db)?;
        Ok(epoch.map(|epoch| Fence { owner: owner.unwrap_or_default().to_string(), epoch }))
    }

    /// One update on `conn`, which should be a write transaction from
    /// [`pupsourcing_core::EventStore::begin`] (`BEGIN IMMEDIATE`) holding the batch's writes:
    /// true iff it moved the checkpoint; on false, roll the transaction back. `lease` is
    /// ignored: a paused batch holds SQLite's one write lock, which no timeout here can end
    /// (every writer waits for it, up to its busy timeout).
    async fn advance_shard_in(
        &self,
        conn: &mut SqliteConnection,
        shard: &ShardId,
        fence: &Fence,
        from: Position,
        to: Position,
        _lease: Duration,
    ) -> Result<bool> {
        check_shard(shard)?;
        validate_position("shard position", to)?;
        let done = sqlx::query(self.coordination_sql.advance_shard.sql())
            .bind(shard.projection.as_str())
            .bind(i64::from(shard.count))
            .bind(i64::from(shard.shard))
            .bind(from)
            .bind(to)
            .bind(fence.owner.as_str())
            .bind(fence.epoch)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
    /// One update through the write pool.
    async fn set_shard_error(&self, shard: &ShardId, fence: &Fence, error: &str) -> Result<bool> {
        check_shard(shard)?;
        check_worker(&fence.owner)?;
        let done = sqlx::query(self.coordination_sql.shard_error.sql())
            .bind(shard.projection.as_str())
            .bind(i64::from(shard.count))
            .bind(i64::from(shard.shard))
            .bind(fence.owner.as_str())
            .bind(fence.epoch)
            .bind(storable_text(error))
            .execute(self.write_pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// One write transaction (`BEGIN IMMEDIATE`: no batch commits meanwhile): the projection's
    /// rows are read, checked by `reshard_epoch`, deleted and replaced.
    async fn reshard(
        &self,
        projection: &str,
        old: &[(ShardId, Fence)],
        count: u32,
        at: Position,
    ) -> Result<bool> {
        validate_reshard(projection, old, count, at)?;
        let table = self.config().tables.shards.as_str();
        let sql = &self.coordination_sql;
        self.write_transaction(async |conn| {
            let rows = sqlx::query(sql.projection_shards.sql())
                .bind(projection)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            let stored =
                rows.iter().map(|row| decode_shard(row, table)).collect::<Result<Vec<_>>>()?;
            let Some(epoch) = reshard_epoch(&stored, old, at) else { return Ok(false) };
            sqlx::query(sql.delete_shards.sql())
                .bind(projection)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            sqlx::query(sql.create_shards.sql())
                .bind(projection)
                .bind(i64::from(count))
                .bind(at)
                .bind(epoch)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(true)
        })
        .await
    }

    async fn clock(&self) -> Result<DateTime<Utc>> {
        let micros: i64 = sqlx::query_scalar(self.coordination_sql.clock.sql())
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| Error::database(std::io::Error::other("SQLite's clock is out of range")))
    }
}
