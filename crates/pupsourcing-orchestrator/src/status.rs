//! [`status`]: where a pool of workers stands, for operators, dashboards and health checks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pupsourcing_core::Position;
use pupsourcing_core::coordination::{CoordinationStore, Generation, ShardId, WorkerState};
use pupsourcing_core::projection::{Partition, Scope, Stall};

use crate::orchestrator::Orchestrator;

/// The pool: its generation, its workers and every projection shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorStatus {
    /// The current Recreate generation and its phase.
    pub generation: Generation,
    /// Every registered worker, by id.
    pub workers: Vec<WorkerStatus>,
    /// Every shard, by projection, count and shard.
    pub shards: Vec<ShardStatus>,
    /// The write in flight that holds the log's head back, if any: no shard moves past it
    /// while it stays open.
    pub stall: Option<Stall>,
}

/// One registered worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Its id (host name and UUID unless set).
    pub id: String,
    /// The generation it belongs to.
    pub generation: i64,
    /// What it reported in its last heartbeat.
    pub state: WorkerState,
    /// When it registered (database clock).
    pub started_at: DateTime<Utc>,
    /// Time since its last heartbeat, by the database clock: past the stale threshold it is
    /// removed and its shards move.
    pub heartbeat_age: Duration,
}

/// What a shard is doing, as far as the database tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    /// No worker owns it (between a release and the next assignment).
    Unowned,
    /// Owned and caught up: nothing in scope after its checkpoint.
    Idle,
    /// Owned, with events waiting.
    Behind,
    /// Its processor stopped on an error (see `last_error`); it restarts when the shard moves.
    Failed,
}

/// One shard of a projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    /// Which shard.
    pub shard: ShardId,
    /// The worker that owns it.
    pub owner: Option<String>,
    /// Bumped on every change of owner (the fence of every commit).
    pub epoch: i64,
    /// Its checkpoint.
    pub checkpoint: Position,
    /// The gap-free head of the log.
    pub head: Position,
    /// In-scope events of the shard after the checkpoint (without a known scope, every event
    /// of the shard's partition).
    pub lag_events: u64,
    /// Age of the oldest of them, by the database clock.
    pub lag: Option<Duration>,
    /// Unowned, idle, behind or failed.
    pub state: ShardState,
    /// The error that stopped its processor under the current owner.
    pub last_error: Option<String>,
    /// When the row last changed (database clock).
    pub updated_at: DateTime<Utc>,
}

/// The status of the pool on `store`. `scopes` gives the scope of the projections you know
/// (lag then counts only their events); others count every event of their shard.
pub async fn status<S: CoordinationStore>(
    store: &S,
    scopes: &[(&str, Scope)],
) -> pupsourcing_core::Result<OrchestratorStatus> {
    let now = store.clock().await?;
    let age = |at: DateTime<Utc>| (now - at).to_std().unwrap_or_default();
    let workers = store
        .workers()
        .await?
        .into_iter()
        .map(|w| WorkerStatus {
            heartbeat_age: age(w.last_heartbeat),
            id: w.id,
            generation: w.generation,
            state: w.state,
            started_at: w.started_at,
        })
        .collect();
    let head = store.head().await?;
    let mut shards = Vec::new();
    for row in store.shards().await? {
        let scope = scopes
            .iter()
            .find(|(name, _)| *name == row.id.projection)
            .map_or_else(Scope::all, |(_, scope)| scope.clone());
        let partition = Partition::new(row.id.shard, row.id.count)?;
        let pending = store.pending(&scope, partition, row.position).await?;
        let state = match (&row.last_error, &row.owner, pending.events) {
            (Some(_), _, _) => ShardState::Failed,
            (None, None, _) => ShardState::Unowned,
            (None, Some(_), 0) => ShardState::Idle,
            (None, Some(_), _) => ShardState::Behind,
        };
        shards.push(ShardStatus {
            shard: row.id,
            owner: row.owner,
            epoch: row.epoch,
            checkpoint: row.position,
            head: head.max(row.position),
            lag_events: pending.events,
            lag: pending.oldest.map(age),
            state,
            last_error: row.last_error,
            updated_at: row.updated_at,
        });
    }
    Ok(OrchestratorStatus {
        generation: store.generation().await?,
        workers,
        shards,
        stall: store.stall().await?,
    })
}

impl<S: CoordinationStore> Orchestrator<S> {
    /// The status of this worker's pool ([`status`]), with the lag of its projections counted
    /// in their scopes.
    pub async fn status(&self) -> pupsourcing_core::Result<OrchestratorStatus> {
        let scopes: Vec<(&str, Scope)> =
            self.projections.iter().map(|e| (e.name.as_str(), e.scope.clone())).collect();
        status(&self.store, &scopes).await
    }
}
