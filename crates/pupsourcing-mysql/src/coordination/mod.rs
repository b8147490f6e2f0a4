//! The orchestrator's coordination on MySQL / MariaDB ([`CoordinationStore`]): workers with
//! heartbeats on the database clock, the Recreate generation, and projection shards fenced by
//! owner and epoch.
//!
//! Every change is one compare-and-set statement (autocommit) or one short transaction. An
//! InnoDB `UPDATE`/`DELETE` reads the latest committed row and locks it (a concurrent writer of
//! the row waits, then re-checks its condition on the committed row), so two callers never both
//! win. No `GET_LOCK`, no SERIALIZABLE. Every time is the database clock (`crate::sql::NOW`),
//! in microseconds since the Unix epoch, UTC.
//!
//! Shard rows are created (`ensure_shards`) and their count changed (`reshard`) only under the
//! recreate lock's row, locked exclusively first (`lock_counts.sql`): a check that no row of
//! another count exists cannot lock rows that do not exist yet, so without it two ensures of
//! different counts, or an ensure and a reshard, would both pass their checks.
//!
//! # Fencing and removal
//!
//! Each registered worker has two rows: its workers row (state, heartbeat) and its lock row
//! (`<workers>_locks`), inserted together at registration and deleted together: the
//! lock row's foreign key deletes it with the workers row (`ON DELETE CASCADE`), in the same
//! statement, whoever deletes it. [`CoordinationStore::advance_shard_in`] runs in the batch's
//! transaction: it locks the owner's lock row shared, then moves the shard's checkpoint only if
//! the shard row still has the batch's start position, owner and epoch. A removal deletes the
//! workers row, and so the lock row (exclusive: it waits for the batches in flight), then
//! releases the worker's shards; a batch after a removal finds no lock row. The heartbeat
//! updates the workers row, which no batch locks: InnoDB has no lock like PostgreSQL's KEY
//! SHARE, so a batch holding the row the heartbeat updates would hold up the heartbeat for the
//! whole batch (a processor moves its checkpoint first in the batch's transaction, before its
//! handler runs: `pupsourcing-projection`'s `pass.rs`), past the stale threshold for a long
//! batch, and fail it past `innodb_lock_wait_timeout`.
//!
//! Lock order, every transaction that touches a worker's rows (so no cycle): workers rows,
//! then lock rows, then shard rows, and shard rows in key order.
//! - batch commit: one lock row shared (`lock_worker.sql`), then its shard row
//!   (`advance_shard.sql`);
//! - heartbeat: workers row (`heartbeat.sql`), then a plain read of the lock row (`has_lock.sql`,
//!   no lock);
//! - registration: workers row (`register_worker.sql`), then lock row (`register_lock.sql`), in
//!   one transaction;
//! - removal (stale or own), one transaction: each removed worker's workers row then lock row
//!   (`delete_worker.sql` and its cascade), worker by worker in id order; then, once every
//!   delete is done, the shard rows of all of them in one statement (`release_shards.sql`, one
//!   scan in key order). A removal that released a worker's shards before deleting the next
//!   worker held a shard row while it waited for that worker's batch, which could be waiting
//!   for the same row (a fence from before the shard moved): a deadlock
//!   (`tests/coordination.rs::a_stale_removal_of_two_workers_does_not_deadlock_a_batch`); and
//!   worker by worker releases scanned the shard rows from the start again, against the key
//!   order of an ensure's or a reshard's locks
//!   (`a_stale_removal_racing_an_ensure_does_not_deadlock`);
//! - assignments and shard errors take one shard row; ensures and reshards take the recreate
//!   lock's row, then shard rows in key order; none takes a worker's row;
//! - plain reads (`workers.sql`, `stale_candidates.sql`) lock nothing.
//!
//! A removal holds the workers row while it waits for a batch of that worker, so a heartbeat of
//! the worker being removed waits too, and then finds no row. A worker registered by a version
//! before the lock rows has none: a batch of this version under its name commits nothing, and
//! its heartbeat here reports it gone, so a worker of this version in that state stops
//! (`Evicted`) instead of running batches that all roll back. Workers of the older version run
//! their own statements (their batches lock the workers row, which removals delete first).
//!
//! # Lease
//!
//! On MariaDB the batch's session gets `idle_transaction_timeout` (whole seconds, rounded
//! up) from the lease: a batch left idle that long (its process paused) is ended by the server,
//! which closes the session, rolls the batch back and releases its locks, so failover proceeds.
//! The setting is the session's; the store's next transaction on the session sets it back to
//! the server's default (see `store::BEGIN`). MySQL has no such setting: there, a paused batch
//! holds its rows until its connection ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pupsourcing_core::coordination::{
    CoordinationStore, Fence, Generation, RecreatePhase, Shard, ShardId, Worker, WorkerState,
    reshard_epoch, validate_reshard, validate_worker_id,
};
use pupsourcing_core::projection::{Partition, storable_text};
use pupsourcing_core::timeout::within as limited;
use pupsourcing_core::{Error, Position, Result, StoreConfig, ValidationError};
use sqlx::mysql::MySqlRow;
use sqlx::{AssertSqlSafe, Connection, MySqlConnection, Row};

use crate::MySqlEventStore;
use crate::checkpoint::{check_projection, decode_name, decode_time, partition_args};
use crate::error::{CorruptRow, db};
use crate::sql::{Statement, repeated};
use crate::store::BEGIN;

/// The coordination statements, rendered for one store.
#[derive(Debug, Clone)]
pub(crate) struct CoordinationSql {
    register_worker: Statement,
    register_lock: Statement,
    heartbeat: Statement,
    has_lock: Statement,
    delete_worker: Statement,
    stale_candidates: Statement,
    release_shards: Statement,
    workers: Statement,
    generation: Statement,
    begin_generation: Statement,
    create_generation: Statement,
    set_phase: Statement,
    ensure_shards: Statement,
    shards: Statement,
    assign_shard: Statement,
    lock_worker: Statement,
    advance_shard: Statement,
    shard_error: Statement,
    lock_counts: Statement,
    lock_shards: Statement,
    delete_shards: Statement,
    create_shards: Statement,
    clock: Statement,
}

impl CoordinationSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        let s = |template| Statement::new(template, config);
        Self {
            register_worker: s(include_str!("register_worker.sql")),
            register_lock: s(include_str!("register_lock.sql")),
            heartbeat: s(include_str!("heartbeat.sql")),
            has_lock: s(include_str!("has_lock.sql")),
            delete_worker: s(include_str!("delete_worker.sql")),
            stale_candidates: s(include_str!("stale_candidates.sql")),
            release_shards: s(include_str!("release_shards.sql")),
            workers: s(include_str!("workers.sql")),
            generation: s(include_str!("generation.sql")),
            begin_generation: s(include_str!("begin_generation.sql")),
            create_generation: s(include_str!("create_generation.sql")),
            set_phase: s(include_str!("set_phase.sql")),
            ensure_shards: s(include_str!("ensure_shards.sql")),
            shards: s(include_str!("shards.sql")),
            assign_shard: s(include_str!("assign_shard.sql")),
            lock_worker: s(include_str!("lock_worker.sql")),
            advance_shard: s(include_str!("advance_shard.sql")),
            shard_error: s(include_str!("shard_error.sql")),
            lock_counts: s(include_str!("lock_counts.sql")),
            lock_shards: s(include_str!("lock_shards.sql")),
            delete_shards: s(include_str!("delete_shards.sql")),
            create_shards: s(include_str!("create_shards.sql")),
            clock: s(include_str!("clock.sql")),
        }
    }
}

/// Checks a shard against the partition rules and returns its key and count as the table
/// stores them.
fn shard_args(shard: &ShardId) -> Result<(i32, i32)> {
    check_projection(&shard.projection)?;
    Ok(partition_args(Partition::new(shard.shard, shard.count)?))
}

/// A stale threshold in whole microseconds, capped at about a century: a longer one finds no
/// stale worker either, and the cutoff stays far from the integer's limits.
fn micros(duration: Duration) -> i64 {
    const CENTURY_MICROS: i64 = 100 * 365 * 86_400 * 1_000_000;
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX).min(CENTURY_MICROS)
}

/// A lease as `idle_transaction_timeout` takes it: whole seconds, rounded up, at least 1
/// (0 turns the limit off), at most a year.
fn lease_seconds(lease: Duration) -> u64 {
    let seconds = lease.as_secs().saturating_add(u64::from(lease.subsec_nanos() > 0));
    seconds.clamp(1, 365 * 86_400)
}

fn decode_worker(row: &MySqlRow, table: &str) -> Result<Worker> {
    let state: String = row.try_get("state").map_err(db)?;
    let state = WorkerState::parse(&state)
        .ok_or_else(|| CorruptRow::error(table, "state", format!("unknown state {state:?}")))?;
    Ok(Worker {
        id: decode_name(row, table, "worker_id")?,
        generation: row.try_get("generation").map_err(db)?,
        state,
        started_at: decode_time(row, table, "started_at")?,
        last_heartbeat: decode_time(row, table, "last_heartbeat")?,
    })
}

fn decode_shard(row: &MySqlRow, table: &str) -> Result<Shard> {
    let shard: i32 = row.try_get("shard").map_err(db)?;
    let count: i32 = row.try_get("shard_count").map_err(db)?;
    let partition = match (u32::try_from(shard), u32::try_from(count)) {
        (Ok(shard), Ok(count)) => Partition::new(shard, count).ok(),
        _ => None,
    }
    .ok_or_else(|| CorruptRow::error(table, "shard", format!("shard {shard} of {count}")))?;
    let owner: Option<Vec<u8>> = row.try_get("owner").map_err(db)?;
    Ok(Shard {
        id: ShardId {
            projection: decode_name(row, table, "projection_name")?,
            shard: partition.key(),
            count: partition.count(),
        },
        owner: owner.map(|o| crate::read::text(table, "owner", o)).transpose()?,
        epoch: row.try_get("epoch").map_err(db)?,
        position: row.try_get("position").map_err(db)?,
        updated_at: decode_time(row, table, "updated_at")?,
        last_error: row.try_get("last_error").map_err(db)?,
    })
}

impl MySqlEventStore {
    /// Runs `work` in a READ COMMITTED transaction on a pooled connection, committed on
    /// success and rolled back at once on failure.
    async fn transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut MySqlConnection) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let mut tx = conn.begin_with(BEGIN).await.map_err(db)?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await.map_err(db)?;
                Ok(value)
            }
            Err(err) => {
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    /// Deletes the row of each worker whose heartbeat is older than its cutoff, in the order
    /// given, on `conn` (in a transaction), and with it its lock row (each delete waits for
    /// that worker's batches in flight); the ids whose rows were deleted. Nothing else is
    /// locked meanwhile: the shards are released after every delete ([`Self::release_on`]).
    async fn delete_on(
        &self,
        conn: &mut MySqlConnection,
        workers: &[(String, i64)],
    ) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        for (worker, cutoff) in workers {
            let done = sqlx::query(self.coordination_sql().delete_worker.sql())
                .bind(worker)
                .bind(cutoff)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            if done.rows_affected() == 1 {
                deleted.push(worker.clone());
            }
        }
        Ok(deleted)
    }

    /// Releases every shard owned by one of `workers` (owner cleared, epoch bumped) in one
    /// statement on `conn`, after their deletes: one scan in key order, the order reshards and
    /// ensures lock shard rows in (releases worker by worker would scan again from the start,
    /// holding rows a reshard or an ensure waits for).
    async fn release_on(&self, conn: &mut MySqlConnection, workers: &[String]) -> Result<()> {
        if workers.is_empty() {
            return Ok(());
        }
        let release = self.coordination_sql().release_shards.text();
        let text = format!("{release} ({})", repeated("?", workers.len()));
        let mut query = sqlx::query(AssertSqlSafe(text));
        for worker in workers {
            query = query.bind(worker);
        }
        query.execute(&mut *conn).await.map_err(db)?;
        Ok(())
    }

    async fn rows(&self, statement: &Statement) -> Result<Vec<MySqlRow>> {
        limited(self.config().timeouts.query, async {
            sqlx::query(statement.sql()).fetch_all(self.pool()).await.map_err(db)
        })
        .await
    }
}

/// Coordination on MySQL / MariaDB: see the module documentation of `coordination`. The reads
/// ([`workers`](CoordinationStore::workers), [`generation`](CoordinationStore::generation),
/// [`shards`](CoordinationStore::shards)) honour the configured query time limit.
impl CoordinationStore for MySqlEventStore {
    /// A store on a pool of one connection of its own (with the store's session setup),
    /// opened lazily with this pool's connect options; it closes when its last clone is
    /// dropped.
    async fn dedicated(&self) -> Result<Self> {
        Ok(self.with_own_connection())
    }

    /// One transaction: the workers row, then the worker's lock row (kept if it exists).
    async fn register_worker(
        &self,
        worker: &str,
        generation: i64,
        state: WorkerState,
    ) -> Result<()> {
        validate_worker_id(worker)?;
        let sql = self.coordination_sql();
        self.transaction(async |conn: &mut MySqlConnection| {
            sqlx::query(sql.register_worker.sql())
                .bind(worker)
                .bind(generation)
                .bind(state.as_str())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            sqlx::query(sql.register_lock.sql())
                .bind(worker)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// The update of the workers row, then, if it matched, a plain read of the lock row:
    /// false (the worker must stop) when either is missing, since without its lock row the
    /// worker's batches commit nothing.
    async fn heartbeat(&self, worker: &str, state: WorkerState) -> Result<bool> {
        validate_worker_id(worker)?;
        let sql = self.coordination_sql();
        let done = sqlx::query(sql.heartbeat.sql())
            .bind(state.as_str())
            .bind(worker)
            .execute(self.pool())
            .await
            .map_err(db)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let lock = sqlx::query(sql.has_lock.sql())
            .bind(worker)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        Ok(lock.is_some())
    }

    /// One transaction: the row's delete, then the release of the worker's shards (released
    /// even when the row was gone already: no shard stays owned by a worker without a row).
    async fn remove_worker(&self, worker: &str) -> Result<()> {
        validate_worker_id(worker)?;
        let worker = worker.to_string();
        self.transaction(async |conn: &mut MySqlConnection| {
            self.delete_on(conn, &[(worker.clone(), i64::MAX)]).await?;
            self.release_on(conn, &[worker]).await
        })
        .await
    }

    /// Stale means `last_heartbeat < now - threshold` by the database clock. The candidates
    /// are read without locks; then, in one transaction, each is deleted by id (its heartbeat
    /// checked again on the committed row: a heartbeat committed meanwhile keeps it), and
    /// only then are the shards of those deleted released, so that no shard row is held while
    /// a delete waits for a batch. The ids come back sorted.
    async fn remove_stale_workers(&self, threshold: Duration) -> Result<Vec<String>> {
        let table = self.config().tables.workers.as_str();
        self.transaction(async |conn: &mut MySqlConnection| {
            let rows = sqlx::query(self.coordination_sql().stale_candidates.sql())
                .bind(micros(threshold))
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            let mut candidates = Vec::new();
            for row in rows {
                let id: Option<Vec<u8>> = row.try_get(0).map_err(db)?;
                let Some(id) = id else { continue };
                let cutoff: i64 = row.try_get(1).map_err(db)?;
                candidates.push((crate::read::text(table, "worker_id", id)?, cutoff));
            }
            let removed = self.delete_on(conn, &candidates).await?;
            self.release_on(conn, &removed).await?;
            Ok(removed)
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<Worker>> {
        let table = self.config().tables.workers.as_str();
        let rows = self.rows(&self.coordination_sql().workers).await?;
        rows.iter().map(|row| decode_worker(row, table)).collect()
    }

    async fn generation(&self) -> Result<Generation> {
        let table = self.config().tables.recreate_lock.as_str();
        let rows = self.rows(&self.coordination_sql().generation).await?;
        let row = rows.first().ok_or_else(|| CorruptRow::error(table, "generation", "no row"))?;
        let phase: String = row.try_get("phase").map_err(db)?;
        Ok(Generation {
            number: row.try_get("generation").map_err(db)?,
            phase: RecreatePhase::parse(&phase)
                .ok_or_else(|| CorruptRow::error(table, "phase", format!("unknown {phase:?}")))?,
            updated_at: decode_time(row, table, "updated_at")?,
        })
    }

    /// One compare-and-set statement; a schema without the singleton row counts as
    /// generation 0. A `current` below 0 or at `i64::MAX` is refused.
    async fn begin_generation(&self, current: i64) -> Result<Option<i64>> {
        if current < 0 || current == i64::MAX {
            let reason = "must be 0 to i64::MAX - 1";
            return Err(ValidationError::OutOfRange { field: "generation", reason }.into());
        }
        let sql = self.coordination_sql();
        let done = sqlx::query(sql.begin_generation.sql())
            .bind(current)
            .execute(self.pool())
            .await
            .map_err(db)?;
        if done.rows_affected() == 1 {
            return Ok(Some(current + 1));
        }
        if current == 0 {
            let created =
                sqlx::query(sql.create_generation.sql()).execute(self.pool()).await.map_err(db)?;
            if created.rows_affected() == 1 {
                return Ok(Some(1));
            }
        }
        Ok(None)
    }

    async fn set_phase(&self, number: i64, phase: RecreatePhase) -> Result<bool> {
        let done = sqlx::query(self.coordination_sql().set_phase.sql())
            .bind(phase.as_str())
            .bind(number)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// One transaction: the recreate lock's row is locked first (`lock_counts.sql`), so that
    /// concurrent ensures and reshards of any count run one after the other and each checks
    /// the rows the one before committed; then the missing rows are created. A negative
    /// `start` is refused.
    async fn ensure_shards(&self, projection: &str, count: u32, start: Position) -> Result<()> {
        check_projection(projection)?;
        pupsourcing_core::coordination::validate_shard_count(count)?;
        let (_, count) = partition_args(Partition::new(0, count)?);
        pupsourcing_core::validate_position("shard start", start)?;
        let sql = self.coordination_sql();
        self.transaction(async |conn: &mut MySqlConnection| {
            sqlx::query(sql.lock_counts.sql()).execute(&mut *conn).await.map_err(db)?;
            sqlx::query(sql.ensure_shards.sql())
                .bind(count)
                .bind(projection)
                .bind(count)
                .bind(start)
                .bind(projection)
                .bind(count)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn shards(&self) -> Result<Vec<Shard>> {
        let table = self.config().tables.shards.as_str();
        let rows = self.rows(&self.coordination_sql().shards).await?;
        rows.iter().map(|row| decode_shard(row, table)).collect()
    }

    /// One compare-and-set statement. When `owner` is `None` (a release), the returned fence
    /// names the empty owner, which no worker can have: no batch commits under it.
    async fn assign_shard(
        &self,
        shard: &ShardId,
        epoch: i64,
        owner: Option<&str>,
    ) -> Result<Option<Fence>> {
        let (key, count) = shard_args(shard)?;
        if let Some(owner) = owner {
            validate_worker_id(owner)?;
        }
        let done = sqlx::query(self.coordination_sql().assign_shard.sql())
            .bind(owner)
            .bind(shard.projection.as_str())
            .bind(count)
            .bind(key)
            .bind(epoch)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok((done.rows_affected() == 1)
            .then(|| Fence { owner: owner.unwrap_or_default().to_string(), epoch: epoch + 1 }))
    }

    /// Three statements on `conn`: the lease (MariaDB), the worker's lock row locked shared,
    /// then the fenced compare-and-set. False, changing nothing, when the worker is gone (or
    /// has no lock row) or the fence or position moved: roll the transaction back.
    async fn advance_shard_in(
        &self,
        conn: &mut MySqlConnection,
        shard: &ShardId,
        fence: &Fence,
        from: Position,
        to: Position,
        lease: Duration,
    ) -> Result<bool> {
        let (key, count) = shard_args(shard)?;
        validate_worker_id(&fence.owner)?;
        pupsourcing_core::validate_position("shard position", to)?;
        let lease =
            include_str!("lease.sql").replace("{seconds}", &lease_seconds(lease).to_string());
        sqlx::raw_sql(AssertSqlSafe(lease)).execute(&mut *conn).await.map_err(db)?;
        let sql = self.coordination_sql();
        let registered = sqlx::query(sql.lock_worker.sql())
            .bind(fence.owner.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if registered.is_none() {
            return Ok(false);
        }
        let done = sqlx::query(sql.advance_shard.sql())
            .bind(to)
            .bind(shard.projection.as_str())
            .bind(count)
            .bind(key)
            .bind(from)
            .bind(fence.owner.as_str())
            .bind(fence.epoch)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// One statement. A NUL in `error` is stored as U+FFFD.
    async fn set_shard_error(&self, shard: &ShardId, fence: &Fence, error: &str) -> Result<bool> {
        let (key, count) = shard_args(shard)?;
        validate_worker_id(&fence.owner)?;
        let done = sqlx::query(self.coordination_sql().shard_error.sql())
            .bind(storable_text(error))
            .bind(shard.projection.as_str())
            .bind(count)
            .bind(key)
            .bind(fence.owner.as_str())
            .bind(fence.epoch)
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// One transaction: the recreate lock's row is locked first (as by `ensure_shards`), then
    /// the projection's rows (`FOR UPDATE`, waiting for a batch in flight), checked by
    /// `reshard_epoch`, deleted and replaced.
    async fn reshard(
        &self,
        projection: &str,
        old: &[(ShardId, Fence)],
        count: u32,
        at: Position,
    ) -> Result<bool> {
        validate_reshard(projection, old, count, at)?;
        let (_, count) = partition_args(Partition::new(0, count)?);
        let table = self.config().tables.shards.as_str();
        let sql = self.coordination_sql();
        self.transaction(async |conn: &mut MySqlConnection| {
            sqlx::query(sql.lock_counts.sql()).execute(&mut *conn).await.map_err(db)?;
            let rows = sqlx::query(sql.lock_shards.sql())
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
                .bind(count)
                .bind(projection)
                .bind(count)
                .bind(epoch)
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(true)
        })
        .await
    }

    async fn clock(&self) -> Result<DateTime<Utc>> {
        let micros: i64 = sqlx::query_scalar(self.coordination_sql().clock.sql())
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        DateTime::from_timestamp_micros(micros).ok_or_else(|| {
            Error::database(std::io::Error::other("the database clock is out of range"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_whole_seconds_rounded_up() {
        assert_eq!(lease_seconds(Duration::from_millis(300)), 1);
        assert_eq!(lease_seconds(Duration::from_secs(5)), 5);
        assert_eq!(lease_seconds(Duration::from_millis(5001)), 6);
        assert_eq!(lease_seconds(Duration::MAX), 365 * 86_400);
    }

    #[test]
    fn thresholds_saturate() {
        assert_eq!(micros(Duration::from_millis(1500)), 1_500_000);
        assert_eq!(micros(Duration::MAX), 100 * 365 * 86_400 * 1_000_000);
    }
}
