//! Workers, generations and shards as the coordination tables store them.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::event::Position;

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// Registered, not yet taking shards.
    Starting,
    /// Connected and idle: may be given shards.
    Ready,
    /// Running the shards it owns.
    Running,
    /// Finishing the batches in hand before it stops; gives its shards up.
    Draining,
    /// Stopped cleanly.
    Stopped,
}

impl WorkerState {
    /// The name stored in the workers table.
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Ready => "ready",
            WorkerState::Running => "running",
            WorkerState::Draining => "draining",
            WorkerState::Stopped => "stopped",
        }
    }

    /// The state stored as `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Starting, Self::Ready, Self::Running, Self::Draining, Self::Stopped]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A worker as the workers table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// Stable id: host name and a UUID.
    pub id: String,
    /// The Recreate generation it belongs to.
    pub generation: i64,
    /// Its state.
    pub state: WorkerState,
    /// When it registered (database clock).
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (database clock).
    pub last_heartbeat: DateTime<Utc>,
}

/// The phase of the current Recreate generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecreatePhase {
    /// Workers of older generations are being stopped; no projection runs.
    Draining,
    /// Every older worker is gone: the generation's workers run projections.
    Running,
}

impl RecreatePhase {
    /// The name stored in the recreate lock table.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecreatePhase::Draining => "draining",
            RecreatePhase::Running => "running",
        }
    }

    /// The phase stored as `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Draining, Self::Running].into_iter().find(|s| s.as_str() == name)
    }
}

/// The singleton row of the recreate lock table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The current generation (0 before the first).
    pub number: i64,
    /// Its phase.
    pub phase: RecreatePhase,
    /// When it last changed (database clock).
    pub updated_at: DateTime<Utc>,
}

/// One shard of a projection: shard `shard` of `count` (the projection partition with that
/// key and count).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId {
    /// The projection's name.
    pub projection: String,
    /// The shard's key, `0..count`.
    pub shard: u32,
    /// How many shards the projection has.
    pub count: u32,
}

/// Who may commit a shard's batches: its owner, under the epoch of the assignment. A batch
/// commits only if the shard row still names both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The owning worker.
    pub owner: String,
    /// The assignment's epoch.
    pub epoch: i64,
}

/// A shard row: ownership and checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Which shard.
    pub id: ShardId,
    /// The worker that owns it, if any.
    pub owner: Option<String>,
    /// Bumped on every change of owner.
    pub epoch: i64,
    /// Its checkpoint: every in-scope event of the shard at or below it is handled.
    pub position: Position,
    /// When the row last changed (database clock).
    pub updated_at: DateTime<Utc>,
    /// The error that stopped its processor under the current owner (cleared when the shard
    /// is next assigned).
    pub last_error: Option<String>,
}
