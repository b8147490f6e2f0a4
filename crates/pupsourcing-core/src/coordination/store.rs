//! The [`CoordinationStore`] trait.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::coordination::{Fence, Generation, RecreatePhase, Shard, ShardId, Worker, WorkerState};
use crate::error::Result;
use crate::event::Position;
use crate::projection::ProjectionStore;

/// What the orchestrator stores: workers (heartbeats on the database clock), the Recreate
/// generation, and shards with owner, epoch and checkpoint. Every change is a plain
/// transactional compare-and-set, so concurrent workers never both win.
pub trait CoordinationStore: ProjectionStore {
    /// A store of the same database and configuration whose calls run on a connection of its
    /// own, outside the pool: the orchestrator heartbeats through it, so that processors
    /// holding every pooled connection cannot delay a heartbeat past the stale threshold.
    fn dedicated(&self) -> impl Future<Output = Result<Self>> + Send;

    /// Inserts or replaces the worker's row with `generation` and `state`, its heartbeat now.
    fn register_worker(
        &self,
        worker: &str,
        generation: i64,
        state: WorkerState,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Sets the worker's heartbeat to now and its state; false when its row is gone (it was
    /// removed as stale: it must stop and register again), or when the worker could not
    /// commit a batch anyway (MySQL: its row has no lock row, see that backend). It does not
    /// wait for the worker's batches in flight, but on a backend with one writer at a time
    /// (SQLite), where every write queues behind an open write transaction.
    fn heartbeat(
        &self,
        worker: &str,
        state: WorkerState,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes the worker's row and releases its shards (owner cleared, epoch bumped).
    fn remove_worker(&self, worker: &str) -> impl Future<Output = Result<()>> + Send;

    /// Removes the workers whose last heartbeat is older than `threshold` by the database
    /// clock, releasing their shards; returns their ids.
    fn remove_stale_workers(
        &self,
        threshold: Duration,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Every worker, by id.
    fn workers(&self) -> impl Future<Output = Result<Vec<Worker>>> + Send;

    /// The current generation (number 0, phase running, before the first).
    fn generation(&self) -> impl Future<Output = Result<Generation>> + Send;

    /// Starts generation `current + 1` in phase draining if the generation is still `current`
    /// (compare-and-set); returns the new number, or `None` when another worker moved it.
    fn begin_generation(&self, current: i64) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Sets the phase of generation `number` if it is still the current one; false otherwise.
    fn set_phase(
        &self,
        number: i64,
        phase: RecreatePhase,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Creates the rows of shards `0..count` of `projection` that do not exist (unowned,
    /// epoch 0, position `start`); creates none while the projection has rows of another
    /// count (a worker configured with another count must not add its own: only
    /// [`reshard`](CoordinationStore::reshard) changes a count).
    fn ensure_shards(
        &self,
        projection: &str,
        count: u32,
        start: Position,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Every shard row, by projection, count and shard.
    fn shards(&self) -> impl Future<Output = Result<Vec<Shard>>> + Send;

    /// Gives `shard` to `owner` (or to nobody) if its epoch is still `epoch`, bumping the
    /// epoch; returns the new fence, or `None` when it changed meanwhile.
    fn assign_shard(
        &self,
        shard: &ShardId,
        epoch: i64,
        owner: Option<&str>,
    ) -> impl Future<Output = Result<Option<Fence>>> + Send;

    /// Moves the shard's checkpoint from `from` to `to` in the caller's transaction, only if
    /// the row still has that position AND that owner and epoch AND the owner is still
    /// registered (its worker row exists): the commit of a batch by a worker that lost the
    /// shard (a pause, a slow handler), or that was removed (even if a planner that listed it
    /// just before gave it the shard afterwards), fails here and rolls back. A removal of the
    /// owner waits for its batch in flight.
    ///
    /// Because of that wait, a batch transaction left idle (its process paused, or a handler
    /// stuck outside the database) would hold back every removal and reassignment touching
    /// its rows: where the database can, the store ends the transaction once it sits idle
    /// longer than `lease` (PostgreSQL: `idle_in_transaction_session_timeout`, set for this
    /// transaction only), so the batch rolls back and failover proceeds. Give the stale
    /// threshold. SQLite has one writer at a time and ignores it.
    fn advance_shard_in(
        &self,
        conn: &mut Self::Connection,
        shard: &ShardId,
        fence: &Fence,
        from: Position,
        to: Position,
        lease: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Stores `error` as the shard's last error while `fence` still owns it (cleared when
    /// the shard is next assigned); false when the fence no longer holds. NUL characters are
    /// stored as U+FFFD.
    fn set_shard_error(
        &self,
        shard: &ShardId,
        fence: &Fence,
        error: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Changes the shard count of `projection` in one transaction, only if its rows are
    /// exactly `old` (each shard owned under its fence) and all at position `at`: deletes
    /// them and creates shards `0..count`, unowned, at `at`, with epochs above the old ones.
    /// False (nothing changed) otherwise. Every event of the projection at or below `at` is
    /// handled in every old shard, so the new shards start there without losing or repeating
    /// one; a late commit under an old fence finds no row.
    fn reshard(
        &self,
        projection: &str,
        old: &[(ShardId, Fence)],
        count: u32,
        at: Position,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The database's clock now: heartbeats are stamped with it, so heartbeat ages are
    /// measured against it.
    fn clock(&self) -> impl Future<Output = Result<DateTime<Utc>>> + Send;
}
