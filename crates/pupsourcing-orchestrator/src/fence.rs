//! A processor's checkpoint kept in its shard row, fenced by owner and epoch.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use pupsourcing_core::coordination::{CoordinationStore, Fence, ShardId};
use pupsourcing_core::{Error, Position, Result};
use pupsourcing_projection::Checkpointing;

/// The checkpoint of one shard, owned under `fence`: a processor given this
/// ([`pupsourcing_projection::Processor::with_checkpointing`]) commits a batch only while the
/// shard row still names its owner and epoch, and stops with [`Error::ShardLost`] once it
/// does not (or once its owner's worker row is gone).
#[derive(Debug, Clone)]
pub struct FencedShard {
    /// The shard.
    pub shard: ShardId,
    /// Its owner and epoch, as assigned.
    pub fence: Fence,
    /// How long a batch transaction may sit idle before the database ends it (the stale
    /// threshold; see [`CoordinationStore::advance_shard_in`]).
    pub lease: Duration,
}

impl FencedShard {
    fn lost(&self) -> Error {
        let ShardId { projection, shard, count } = &self.shard;
        Error::ShardLost { shard: format!("{projection} {shard}/{count}") }
    }
}

impl<S: CoordinationStore> Checkpointing<S> for FencedShard {
    fn load<'a>(&'a self, store: &'a S) -> BoxFuture<'a, Result<Position>> {
        async move {
            let shards = store.shards().await?;
            let row = shards.into_iter().find(|s| s.id == self.shard);
            let position = match row {
                Some(row)
                    if row.owner.as_deref() == Some(self.fence.owner.as_str())
                        && row.epoch == self.fence.epoch =>
                {
                    row.position
                }
                _ => return Err(self.lost()),
            };
            // A removed owner commits nothing (advance_shard_in): stop rather than retry.
            let workers = store.workers().await?;
            if !workers.iter().any(|w| w.id == self.fence.owner) {
                return Err(self.lost());
            }
            Ok(position)
        }
        .boxed()
    }

    fn advance_in<'a>(
        &'a self,
        store: &'a S,
        conn: &'a mut S::Connection,
        from: Position,
        to: Position,
    ) -> BoxFuture<'a, Result<bool>> {
        store.advance_shard_in(conn, &self.shard, &self.fence, from, to, self.lease).boxed()
    }

    /// Logs the error and stores it in the shard row while this fence holds (cleared when
    /// the shard is next assigned): status reports it.
    fn record_error<'a>(&'a self, store: &'a S, error: &'a str) -> BoxFuture<'a, Result<()>> {
        let ShardId { projection, shard, count } = &self.shard;
        tracing::error!(%projection, shard, count, %error, "a shard's processor stopped");
        async move { store.set_shard_error(&self.shard, &self.fence, error).await.map(|_| ()) }
            .boxed()
    }
}
