//! What a backend stores for projections: scoped batch reads, checkpoints and dead letters.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::event::{Position, RecordedEvent};
use crate::projection::{Partition, Scope};
use crate::store::EventStore;

/// Events of one projection partition read past its checkpoint, and the gap-free head the read
/// was capped at.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// In-scope events of the partition with `after < position <= head`, in position order.
    pub events: Vec<RecordedEvent>,
    /// The gap-free head the read was capped at: no event at or below it can still appear.
    pub head: Position,
}

impl Batch {
    /// The batch without its events after `at`, and its head no higher than `at`: a processor
    /// that must stop at `at` (to bring shards to one common position) reads this.
    pub fn capped(mut self, at: Position) -> Batch {
        self.events.retain(|event| event.position <= at);
        self.head = self.head.min(at);
        self
    }

    /// How far a checkpoint may move once the batch is handled, for a read of `limit` events:
    /// to the head when the batch is short (every in-scope event up to the head is in it), else
    /// to its last event.
    pub fn end(&self, limit: usize) -> Position {
        match self.events.last() {
            Some(last) if self.events.len() >= limit => last.position,
            _ => self.head,
        }
    }
}

/// The stored progress of one projection partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The projection's name.
    pub projection: String,
    /// Which partition.
    pub partition: Partition,
    /// Every in-scope event of the partition at or below this position is handled; the next
    /// batch reads after it.
    pub position: Position,
    /// When the checkpoint last changed.
    pub updated_at: DateTime<Utc>,
    /// The error that stopped the partition, until it next advances.
    pub last_error: Option<String>,
}

/// An event a projection could not handle, set aside by the dead-letter policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The projection's name.
    pub projection: String,
    /// The partition that met it.
    pub partition: Partition,
    /// The event's position.
    pub position: Position,
    /// The event's id.
    pub event_id: Uuid,
    /// The handler's error.
    pub error: String,
    /// How many times the handler was tried.
    pub attempts: u32,
    /// When it was set aside (the database's clock).
    pub recorded_at: DateTime<Utc>,
}

/// Events a partition has not handled yet: its lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// In-scope events of the partition after the checkpoint, up to the head.
    pub events: u64,
    /// When the oldest of them happened (its `created_at`), if any.
    pub oldest: Option<DateTime<Utc>>,
}

/// Why the gap-free head is held back: the oldest write still in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The position the head stops below.
    pub position: Position,
    /// The database session holding it (PostgreSQL: the backend pid).
    pub session: Option<i64>,
    /// How long its transaction has been open.
    pub transaction_age: Option<Duration>,
    /// The session's `application_name`, if it set one.
    pub application_name: Option<String>,
}

/// An [`EventStore`] that can run projections: the backend half of `pupsourcing-projection`.
///
/// Checkpoints are keyed by projection name and partition (key and count). Calls ending in
/// `_in` run in the caller's transaction, so that a batch's read-model writes, its checkpoint
/// and its dead letters commit together.
pub trait ProjectionStore: EventStore {
    /// Reads up to `limit` in-scope events of `partition` with position above `after`, capped
    /// at the gap-free head (filtered in SQL).
    fn read_batch(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Batch>> + Send;

    /// The partition's checkpoint, created at position 0 when it has none.
    fn checkpoint(
        &self,
        projection: &str,
        partition: Partition,
    ) -> impl Future<Output = Result<Checkpoint>> + Send;

    /// Moves the checkpoint from `from` to `to` in the caller's transaction, if it is still at
    /// `from` (compare-and-set), and clears its error. Returns false, changing nothing, when it
    /// moved or was removed: another processor got there first, and this transaction must roll
    /// back. The row stays locked until the transaction ends, so a second processor of the
    /// partition waits here and then fails.
    fn advance_checkpoint_in(
        &self,
        conn: &mut Self::Connection,
        projection: &str,
        partition: Partition,
        from: Position,
        to: Position,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Stores (or clears) the error that stopped the partition.
    fn set_checkpoint_error(
        &self,
        projection: &str,
        partition: Partition,
        error: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Every checkpoint, ordered by projection and partition.
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>>> + Send;

    /// Removes every checkpoint and dead letter of `projection` in the caller's transaction,
    /// and rewinds its orchestrator shard rows (the checkpoints of an orchestrated projection)
    /// to position 0, unowned, epoch bumped: its next run starts from position 0.
    fn reset_checkpoints_in(
        &self,
        conn: &mut Self::Connection,
        projection: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records a dead letter in the caller's transaction (the one that moves the checkpoint
    /// past it). `recorded_at` is set by the database.
    fn add_dead_letter_in(
        &self,
        conn: &mut Self::Connection,
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes a dead letter in the caller's transaction; false when there was none.
    fn remove_dead_letter_in(
        &self,
        conn: &mut Self::Connection,
        projection: &str,
        position: Position,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The dead letters of `projection` (every projection for `None`), by projection and
    /// position.
    fn dead_letters(
        &self,
        projection: Option<&str>,
    ) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// In-scope events of `partition` above `after`, up to the head: the lag.
    fn pending(
        &self,
        scope: &Scope,
        partition: Partition,
        after: Position,
    ) -> impl Future<Output = Result<Pending>> + Send;

    /// What holds the gap-free head back, if a write is in flight below the newest position.
    fn stall(&self) -> impl Future<Output = Result<Option<Stall>>> + Send;
}
