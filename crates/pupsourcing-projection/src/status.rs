//! [`status`]: where every projection partition stands, for operators and alerts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pupsourcing_core::Position;
use pupsourcing_core::projection::{Partition, ProjectionStore, Scope, Stall};

/// What a partition is doing, as far as the database tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    /// Caught up: nothing in scope after its checkpoint.
    Idle,
    /// Events are waiting to be handled.
    Behind,
    /// Its processor stopped on an event the handler failed on (see `last_error`).
    Failed,
}

/// Where one projection partition stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// The projection.
    pub projection: String,
    /// The partition.
    pub partition: Partition,
    /// Its checkpoint.
    pub checkpoint: Position,
    /// The gap-free head of the log.
    pub head: Position,
    /// In-scope events of the partition after the checkpoint (without a known scope, every
    /// event of the partition).
    pub lag_events: u64,
    /// Age of the oldest of them.
    pub lag: Option<Duration>,
    /// Idle, behind or failed.
    pub state: PartitionState,
    /// The error that stopped it, if any.
    pub last_error: Option<String>,
    /// When its checkpoint last changed.
    pub updated_at: DateTime<Utc>,
    /// Dead letters of the projection (all partitions).
    pub dead_letters: usize,
    /// The write in flight that holds the head back, if there is one: while it stays open,
    /// no projection moves past it.
    pub stall: Option<Stall>,
}

/// The status of every stored checkpoint. `scopes` gives the scope of the projections you
/// know (lag then counts only their events); others count every event of their partition.
pub async fn status<S: ProjectionStore>(
    store: &S,
    scopes: &[(&str, Scope)],
) -> pupsourcing_core::Result<Vec<ProjectionStatus>> {
    let checkpoints = store.checkpoints().await?;
    let letters = store.dead_letters(None).await?;
    let stall = store.stall().await?;
    let head = store.head().await?;
    let mut statuses = Vec::with_capacity(checkpoints.len());
    for checkpoint in checkpoints {
        let scope = scopes
            .iter()
            .find(|(name, _)| *name == checkpoint.projection)
            .map_or_else(Scope::all, |(_, scope)| scope.clone());
        let pending = store.pending(&scope, checkpoint.partition, checkpoint.position).await?;
        let state = match (&checkpoint.last_error, pending.events) {
            (Some(_), _) => PartitionState::Failed,
            (None, 0) => PartitionState::Idle,
            (None, _) => PartitionState::Behind,
        };
        let lag = pending.oldest.map(|at| (Utc::now() - at).to_std().unwrap_or_default());
        statuses.push(ProjectionStatus {
            dead_letters: letters.iter().filter(|l| l.projection == checkpoint.projection).count(),
            projection: checkpoint.projection,
            partition: checkpoint.partition,
            checkpoint: checkpoint.position,
            head: head.max(checkpoint.position),
            lag_events: pending.events,
            lag,
            state,
            last_error: checkpoint.last_error,
            updated_at: checkpoint.updated_at,
            stall: stall.clone(),
        });
    }
    Ok(statuses)
}
