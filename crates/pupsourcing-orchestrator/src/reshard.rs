//! Changing the shard count of a projection at a generation boundary, without losing or
//! repeating an event.
//!
//! Each shard's checkpoint says which of its events are handled, so shards of one count cannot
//! be split at different positions. The new generation's leader (the lowest worker id) does it
//! while the generation is still draining, so no processor of the projection runs anywhere:
//! 1. it takes every old shard (compare-and-set on the epoch, like any move);
//! 2. it runs each old shard's processor, fenced, up to the highest old checkpoint `at`
//!    ([`Processor::stop_at`](pupsourcing_projection::Processor::stop_at)), so that every old
//!    shard has handled every event of the projection up to `at`;
//! 3. one transaction ([`CoordinationStore::reshard`]) checks that the rows are still those
//!    shards under its fences, all at `at`, and replaces them by the new shards at `at`.
//!
//! A crash anywhere leaves either the old rows (the next leader starts again from their
//! checkpoints) or the new ones. A late commit under an old fence finds no row.

use pupsourcing_core::coordination::{CoordinationStore, Fence, Shard, ShardId};
use pupsourcing_projection::CancellationToken;

use crate::error::OrchestratorError;
use crate::orchestrator::{Entry, Orchestrator};

impl<S: CoordinationStore> Orchestrator<S> {
    /// Brings every projection whose stored shard count differs from the configured one to
    /// the configured count. False when it must be tried again (another worker moved a shard,
    /// or `shutdown` came first).
    pub(crate) async fn reshard_all(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<bool, OrchestratorError> {
        let shards = self.store.shards().await?;
        let count = self.strategy.shards_per_projection;
        for entry in &self.projections {
            let old: Vec<Shard> =
                shards.iter().filter(|s| s.id.projection == entry.name).cloned().collect();
            if old.iter().all(|s| s.id.count == count) {
                continue;
            }
            tracing::info!(worker = %self.worker_id, projection = %entry.name,
                from = old[0].id.count, to = count, "changing the shard count");
            if !self.reshard(entry, &old, shutdown).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Steps 1 to 3 of the module documentation for one projection.
    async fn reshard(
        &self,
        entry: &Entry<S>,
        old: &[Shard],
        shutdown: &CancellationToken,
    ) -> Result<bool, OrchestratorError> {
        if old.iter().any(|s| s.id.count == self.strategy.shards_per_projection) {
            // Rows of two counts: never written by reshard (one transaction); refuse to guess.
            return Err(OrchestratorError::InvalidSettings {
                reason: format!("projection {:?} has shard rows of two counts", entry.name),
            });
        }
        let mut taken = Vec::with_capacity(old.len());
        for shard in old {
            let Some(fence) = self.take(shard).await? else { return Ok(false) };
            taken.push((shard.id.clone(), fence, shard.position));
        }
        let at = taken.iter().map(|(_, _, position)| *position).max().unwrap_or(0);
        for (shard, fence, position) in &taken {
            if *position < at && !self.catch_up(entry, shard, fence, at, shutdown).await? {
                return Ok(false);
            }
        }
        let fences: Vec<(ShardId, Fence)> =
            taken.into_iter().map(|(shard, fence, _)| (shard, fence)).collect();
        let count = self.strategy.shards_per_projection;
        let done = self.store.reshard(&entry.name, &fences, count, at).await?;
        if done {
            tracing::info!(worker = %self.worker_id, projection = %entry.name, at, count,
                "shard count changed");
        }
        Ok(done)
    }

    /// This worker's fence on `shard`, taking it if another worker (or nobody) holds it.
    async fn take(&self, shard: &Shard) -> Result<Option<Fence>, OrchestratorError> {
        let me = self.worker_id.as_str();
        if shard.owner.as_deref() == Some(me) {
            return Ok(Some(Fence { owner: me.to_string(), epoch: shard.epoch }));
        }
        Ok(self.store.assign_shard(&shard.id, shard.epoch, Some(me)).await?)
    }

    /// Runs the old shard's processor, fenced, until its checkpoint is `at`. False when
    /// `shutdown` came first (the batch in hand rolls back).
    async fn catch_up(
        &self,
        entry: &Entry<S>,
        shard: &ShardId,
        fence: &Fence,
        at: pupsourcing_core::Position,
        shutdown: &CancellationToken,
    ) -> Result<bool, OrchestratorError> {
        let processor = self.fenced_processor(entry, shard, fence.clone())?.stop_at(at);
        tokio::select! {
            handled = processor.run_until_caught_up() => {
                tracing::info!(projection = %entry.name, shard = shard.shard, count = shard.count,
                    events = handled?, at, "old shard brought to the common position");
                Ok(true)
            }
            _ = shutdown.cancelled() => Ok(false),
        }
    }
}
