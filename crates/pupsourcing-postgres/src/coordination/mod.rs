//! The orchestrator's coordination store on PostgreSQL: workers with heartbeats on the database
//! clock, the Recreate generation, and projection shards fenced by owner and epoch.
//!
//! Every change is one statement (a single implicit transaction) or, for
//! [`CoordinationStore::advance_shard_in`], one statement in the caller's transaction; each is a
//! compare-and-set under READ COMMITTED: a concurrent writer of the same row waits for the row
//! lock and re-checks the condition against the committed row, so two callers never both win.
//! No advisory locks, no SERIALIZABLE. SQL lives in the `.sql` files beside this module.
//!
//! # Lock order
//!
//! Every transaction that locks more than one row takes them in one global order, so no two
//! wait for each other in a cycle: the recreate lock's row, then workers rows in id order, then
//! shard rows in key order (projection, count, shard).
//! - ensure and reshard: the recreate lock's row (`lock_counts.sql`), then the projection's
//!   shard rows in key order (`lock_shards.sql`, `ORDER BY` under `FOR UPDATE`; an ensure
//!   inserts its missing rows in key order and only waits, without locking, for writers of
//!   existing ones);
//! - batch commit: its worker row `FOR KEY SHARE`, then its one shard row (`advance.sql`);
//! - heartbeat, registration: one worker row; assignment, shard error: one shard row;
//! - removal, one statement: the workers rows (`remove_stale.sql`: every stale one, locked
//!   `FOR UPDATE` in id order, then deleted; `remove_worker.sql`: one), then, once every delete
//!   is done, their shard rows, locked in key order, then updated.
//!
//! A plain `UPDATE` or `DELETE` of several rows locks them in the order its scan meets them,
//! which for a sequential scan is the heap's order, not the key's: an update writes a row's new
//! version after rows it preceded. Removals that released their shards by one
//! `UPDATE .. WHERE owner ..` deadlocked with a reshard locking the same rows in key order
//! (40P01, one of them failing), and two stale removals deleting in heap order deadlocked when
//! a stale row was rewritten between their snapshots. So the removals lock with
//! `SELECT .. ORDER BY .. FOR UPDATE` (the plan's `LockRows` above its `Sort`, or above an
//! index scan in that order) before they write. Tests, in `tests/coordination.rs`:
//! - `a_stale_removal_waiting_behind_a_reshard_does_not_deadlock`,
//!   `a_worker_removal_waiting_behind_a_reshard_does_not_deadlock` and
//!   `a_stale_removal_racing_a_reshard_does_not_deadlock` (shard rows);
//! - `two_stale_removals_do_not_deadlock` (workers rows);
//! - `a_stale_removal_releases_only_the_shards_still_owned`,
//!   `a_worker_removal_releases_only_the_shards_still_owned`: the release joins the locked rows
//!   by key only, so the shard lock (its wait re-reads the row and re-checks the owner) is also
//!   what keeps a shard moved to another worker after the removal's snapshot from being
//!   released.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pupsourcing_core::coordination::{
    CoordinationStore, Fence, Generation, RecreatePhase, Shard, ShardId, Worker, WorkerState,
    reshard_epoch, validate_reshard, validate_worker_id,
};
use pupsourcing_core::projection::{Partition, storable_text, validate_projection_name};
use pupsourcing_core::timeout::within as limited;
use pupsourcing_core::{Error, Identifier, Position, Result, ValidationError, validate_position};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection};

use crate::checkpoint::{partition_args, stored_partition};
use crate::error::{column, db_error};
use crate::sql::Statements;
use crate::store::PgEventStore;

/// Locks the recreate lock's row until the transaction on `conn` ends (`lock_counts.sql`):
/// the first step of every creation of a projection's shard rows and change of its count.
async fn lock_counts(conn: &mut PgConnection, statements: &Statements) -> Result<()> {
    sqlx::query(AssertSqlSafe(statements.coordination_lock_counts.clone()))
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Checks a shard against the partition rules and returns its key and count as the table
/// stores them (INT: `Partition::MAX_COUNT` keeps both in range).
fn shard_args(shard: &ShardId) -> Result<(i32, i32), ValidationError> {
    validate_projection_name(&shard.projection)?;
    let partition = Partition::new(shard.shard, shard.count)?;
    Ok(partition_args(partition))
}

/// A value the coordination tables should never hold (their CHECK constraints exclude it).
fn corrupt(what: &str, value: &str) -> Error {
    Error::database(std::io::Error::other(format!("the coordination tables hold {what} {value:?}")))
}

fn worker_row(row: &PgRow) -> Result<Worker> {
    let state: String = column(row, 2)?;
    Ok(Worker {
        id: column(row, 0)?,
        generation: column(row, 1)?,
        state: WorkerState::parse(&state).ok_or_else(|| corrupt("worker state", &state))?,
        started_at: column(row, 3)?,
        last_heartbeat: column(row, 4)?,
    })
}

fn shard_row(row: &PgRow, table: &Identifier) -> Result<Shard> {
    let key: i32 = column(row, 1)?;
    let count: i32 = column(row, 2)?;
    let partition = stored_partition(table, key, count)?;
    Ok(Shard {
        id: ShardId {
            projection: column(row, 0)?,
            shard: partition.key(),
            count: partition.count(),
        },
        owner: column(row, 3)?,
        epoch: column(row, 4)?,
        position: column(row, 5)?,
        updated_at: column(row, 6)?,
        last_error: column(row, 7)?,
    })
}

/// A stale threshold in whole microseconds, capped at about a century: a longer one finds no
/// stale worker either, and subtracting it from the clock stays within PostgreSQL's range.
fn micros(duration: Duration) -> i64 {
    const CENTURY_MICROS: i64 = 100 * 365 * 86_400 * 1_000_000;
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX).min(CENTURY_MICROS)
}

/// A lease as `idle_in_transaction_session_timeout` wants it: whole milliseconds as text, at
/// least 1 (0 would turn the limit off) and at most the setting's maximum (`i32::MAX` ms).
fn idle_limit(lease: Duration) -> String {
    lease.as_millis().clamp(1, i32::MAX as u128).to_string()
}

impl PgEventStore {
    async fn workers_unlimited(&self) -> Result<Vec<Worker>> {
        let rows = sqlx::query(AssertSqlSafe(self.statements().coordination_workers.clone()))
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?;
        rows.iter().map(worker_row).collect()
    }

    async fn generation_unlimited(&self) -> Result<Generation> {
        let row = sqlx::query(AssertSqlSafe(self.statements().coordination_generation.clone()))
            .fetch_one(self.pool())
            .await
            .map_err(db_error)?;
        let phase: String = column(&row, 1)?;
        Ok(Generation {
            number: column(&row, 0)?,
            phase: RecreatePhase::parse(&phase).ok_or_else(|| corrupt("phase", &phase))?,
            updated_at: column::<DateTime<Utc>>(&row, 2)?,
        })
    }

    async fn shards_unlimited(&self) -> Result<Vec<Shard>> {
        let rows = sqlx::query(AssertSqlSafe(self.statements().coordination_shards.clone()))
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?;
        let table = &self.config().tables.shards;
        rows.iter().map(|row| shard_row(row, table)).collect()
    }
}

/// Coordination on PostgreSQL. Every time is the database's clock (`now()`,
/// `clock_timestamp()`), never the client's, so workers on hosts with skewed clocks agree on
/// who is stale. The reads ([`workers`](CoordinationStore::workers),
/// [`generation`](CoordinationStore::generation), [`shards`](CoordinationStore::shards)) honour
/// the configured query time limit (`StoreConfig::timeouts.query`).
///
/// Worker ids must be non-empty and free of NUL; projection names follow
/// `validate_projection_name`; a shard must be a valid `Partition` (count `1..=MAX_COUNT`,
/// shard below count). [`advance_shard_in`](CoordinationStore::advance_shard_in) runs in the
/// caller's transaction, which must be READ COMMITTED (the store's
/// [`begin`](pupsourcing_core::EventStore::begin) is) for a fenced-out commit to return false
/// rather than fail with [`Error::TransactionConflict`].
impl CoordinationStore for PgEventStore {
    /// A store on a pool of one connection of its own, opened (lazily) with this pool's
    /// connect options; it closes when its last clone is dropped.
    async fn dedicated(&self) -> Result<Self> {
        let options = (*self.pool().connect_options()).clone();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(PgEventStore::new(pool, self.config().clone()).with_notifications(false))
    }

    async fn register_worker(
        &self,
        worker: &str,
        generation: i64,
        state: WorkerState,
    ) -> Result<()> {
        validate_worker_id(worker)?;
        sqlx::query(AssertSqlSafe(self.statements().coordination_register.clone()))
            .bind(worker)
            .bind(generation)
            .bind(state.as_str())
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn heartbeat(&self, worker: &str, state: WorkerState) -> Result<bool> {
        validate_worker_id(worker)?;
        let done = sqlx::query(AssertSqlSafe(self.statements().coordination_heartbeat.clone()))
            .bind(worker)
            .bind(state.as_str())
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// One statement: the row's delete and the release of the worker's shards commit together
    /// (locked in the module's lock order: the worker row, then the shard rows in key order).
    async fn remove_worker(&self, worker: &str) -> Result<()> {
        validate_worker_id(worker)?;
        sqlx::query(AssertSqlSafe(self.statements().coordination_remove_worker.clone()))
            .bind(worker)
            .fetch_one(self.pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Stale means `last_heartbeat < clock_timestamp() - threshold` on the server; the ids come
    /// back sorted. One statement: the deletes and the release of the shards commit together
    /// (locked in the module's lock order: workers rows by id, then shard rows in key order).
    async fn remove_stale_workers(&self, threshold: Duration) -> Result<Vec<String>> {
        let rows = sqlx::query(AssertSqlSafe(self.statements().coordination_remove_stale.clone()))
            .bind(micros(threshold))
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?;
        rows.iter().map(|row| column(row, 0)).collect()
    }

    async fn workers(&self) -> Result<Vec<Worker>> {
        limited(self.config().timeouts.query, self.workers_unlimited()).await
    }

    async fn generation(&self) -> Result<Generation> {
        limited(self.config().timeouts.query, self.generation_unlimited()).await
    }

    /// One statement: a missing singleton row counts as generation 0. A `current` below 0 or
    /// at `i64::MAX` is refused.
    async fn begin_generation(&self, current: i64) -> Result<Option<i64>> {
        if current < 0 || current == i64::MAX {
            let reason = "must be 0 to i64::MAX - 1";
            return Err(ValidationError::OutOfRange { field: "generation", reason }.into());
        }
        let row =
            sqlx::query(AssertSqlSafe(self.statements().coordination_begin_generation.clone()))
                .bind(current)
                .fetch_optional(self.pool())
                .await
                .map_err(db_error)?;
        row.map(|row| column(&row, 0)).transpose()
    }

    async fn set_phase(&self, number: i64, phase: RecreatePhase) -> Result<bool> {
        let done = sqlx::query(AssertSqlSafe(self.statements().coordination_set_phase.clone()))
            .bind(number)
            .bind(phase.as_str())
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// One transaction: the recreate lock's row is locked first (`lock_counts.sql`), so that
    /// concurrent ensures and reshards of any count run one after the other and each checks
    /// the rows the one before committed; then the missing rows are created. A negative
    /// `start` is refused.
    async fn ensure_shards(&self, projection: &str, count: u32, start: Position) -> Result<()> {
        validate_projection_name(projection)?;
        pupsourcing_core::coordination::validate_shard_count(count)?;
        let (_, count) = partition_args(Partition::new(0, count)?);
        validate_position("shard start", start)?;
        let statements = self.statements();
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        lock_counts(&mut tx, statements).await?;
        sqlx::query(AssertSqlSafe(statements.coordination_ensure_shards.clone()))
            .bind(projection)
            .bind(count)
            .bind(start)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn shards(&self) -> Result<Vec<Shard>> {
        limited(self.config().timeouts.query, self.shards_unlimited()).await
    }

    /// When `owner` is `None` (a release), the returned fence names the empty owner, which no
    /// worker can have: no batch commits under it.
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
        let row = sqlx::query(AssertSqlSafe(self.statements().coordination_assign.clone()))
            .bind(&shard.projection)
            .bind(count)
            .bind(key)
            .bind(owner)
            .bind(epoch)
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Fence { owner: owner.unwrap_or_default().to_string(), epoch: column(&row, 0)? }))
    }

    async fn advance_shard_in(
        &self,
        conn: &mut PgConnection,
        shard: &ShardId,
        fence: &Fence,
        from: Position,
        to: Position,
        lease: Duration,
    ) -> Result<bool> {
        let (key, count) = shard_args(shard)?;
        validate_worker_id(&fence.owner)?;
        validate_position("shard position", to)?;
        let done = sqlx::query(AssertSqlSafe(self.statements().coordination_advance.clone()))
            .bind(&shard.projection)
            .bind(count)
            .bind(key)
            .bind(from)
            .bind(to)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .bind(idle_limit(lease))
            .execute(conn)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_shard_error(&self, shard: &ShardId, fence: &Fence, error: &str) -> Result<bool> {
        let (key, count) = shard_args(shard)?;
        validate_worker_id(&fence.owner)?;
        let done = sqlx::query(AssertSqlSafe(self.statements().coordination_shard_error.clone()))
            .bind(&shard.projection)
            .bind(count)
            .bind(key)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .bind(storable_text(error))
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// One transaction: the recreate lock's row is locked first (as by `ensure_shards`), then
    /// the projection's rows (`FOR UPDATE`, waiting for a batch in flight), checked by
    /// `reshard_epoch`, then replaced by one statement.
    async fn reshard(
        &self,
        projection: &str,
        old: &[(ShardId, Fence)],
        count: u32,
        at: Position,
    ) -> Result<bool> {
        validate_reshard(projection, old, count, at)?;
        let (_, count) = partition_args(Partition::new(0, count)?);
        let statements = self.statements();
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        lock_counts(&mut tx, statements).await?;
        let rows = sqlx::query(AssertSqlSafe(statements.coordination_lock_shards.clone()))
            .bind(projection)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let table = &self.config().tables.shards;
        let stored = rows.iter().map(|row| shard_row(row, table)).collect::<Result<Vec<_>>>()?;
        let Some(epoch) = reshard_epoch(&stored, old, at) else { return Ok(false) };
        sqlx::query(AssertSqlSafe(statements.coordination_reshard.clone()))
            .bind(projection)
            .bind(count)
            .bind(at)
            .bind(epoch)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn clock(&self) -> Result<DateTime<Utc>> {
        sqlx::query_scalar(AssertSqlSafe(self.statements().coordination_clock.clone()))
            .fetch_one(self.pool())
            .await
            .map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_follow_the_partition_rules() {
        let id = |shard, count| ShardId { projection: "totals".into(), shard, count };
        assert_eq!(shard_args(&id(2, 4)).unwrap(), (2, 4));
        assert!(shard_args(&id(4, 4)).is_err());
        assert!(shard_args(&id(0, 0)).is_err());
        assert!(shard_args(&id(0, Partition::MAX_COUNT + 1)).is_err());
        let bad_name = ShardId { projection: " ".into(), shard: 0, count: 1 };
        assert!(shard_args(&bad_name).is_err());
    }

    #[test]
    fn thresholds_saturate() {
        assert_eq!(micros(Duration::from_millis(1500)), 1_500_000);
        assert_eq!(micros(Duration::MAX), 100 * 365 * 86_400 * 1_000_000);
    }
}
