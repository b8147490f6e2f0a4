//! Where a processor keeps its checkpoint: by default the checkpoints table, one row per
//! projection partition; the orchestrator swaps in shard rows fenced by owner and epoch.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use pupsourcing_core::projection::{Partition, ProjectionStore};
use pupsourcing_core::{EventStore, Position, Result};

/// A processor's checkpoint: read once at start (and after errors), moved by
/// compare-and-set in each batch's transaction.
pub trait Checkpointing<S: EventStore>: Send + Sync + 'static {
    /// The stored checkpoint, created at its start when missing.
    fn load<'a>(&'a self, store: &'a S) -> BoxFuture<'a, Result<Position>>;

    /// Moves it from `from` to `to` in the batch's transaction if nothing else moved it
    /// (and, for a fenced checkpoint, if the processor still owns it); false means the
    /// transaction must roll back.
    fn advance_in<'a>(
        &'a self,
        store: &'a S,
        conn: &'a mut S::Connection,
        from: Position,
        to: Position,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Stores the error that stopped the processor, for status.
    fn record_error<'a>(&'a self, store: &'a S, error: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// The checkpoints table's row of one projection partition (the default).
pub(crate) struct TableCheckpoint {
    pub name: Arc<str>,
    pub partition: Partition,
}

impl<S: ProjectionStore> Checkpointing<S> for TableCheckpoint {
    fn load<'a>(&'a self, store: &'a S) -> BoxFuture<'a, Result<Position>> {
        async move { Ok(store.checkpoint(&self.name, self.partition).await?.position) }.boxed()
    }

    fn advance_in<'a>(
        &'a self,
        store: &'a S,
        conn: &'a mut S::Connection,
        from: Position,
        to: Position,
    ) -> BoxFuture<'a, Result<bool>> {
        store.advance_checkpoint_in(conn, &self.name, self.partition, from, to).boxed()
    }

    fn record_error<'a>(&'a self, store: &'a S, error: &'a str) -> BoxFuture<'a, Result<()>> {
        store.set_checkpoint_error(&self.name, self.partition, Some(error)).boxed()
    }
}
