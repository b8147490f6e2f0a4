//! The Recreate strategy's settings.

use std::time::Duration;

use pupsourcing_core::coordination::{MAX_SHARDS, validate_shard_count};

use crate::error::OrchestratorError;

/// The Recreate strategy: a new generation (a new deployment) stops every worker of the older
/// generations before any projection runs in it, like a Kubernetes `Recreate` deployment.
///
/// Semantics, as [`crate::Orchestrator::run`] applies them:
/// - `generation: None` (the default): the worker joins the current generation.
/// - `generation: Some(g)` with `g` above the current generation: the worker starts generation
///   `g` (one compare-and-set per step, phase draining). Workers of older generations see it
///   on their next tick, drain (finish the batch in hand, release their shards, remove their
///   row) and their `run` returns `Ok`.
/// - `generation: Some(g)` with `g` equal to the current one: the worker joins it.
/// - `generation: Some(g)` with `g` below the current one: the worker is outdated; `run`
///   returns `Ok` at once without taking any shard.
/// - While the current generation is draining, its workers wait (state ready) until no live
///   worker of an older generation is left (after removing stale ones); then one of them sets
///   the phase to running and shards are assigned. No projection runs in two generations at
///   once, and a late commit of an old worker fails its shard's fence.
/// - The shard count of a projection changes only there: before setting the phase to
///   running, the new generation's leader (its lowest worker id) brings every old shard to
///   the highest old checkpoint and replaces them, in one transaction, by the configured
///   number of shards starting at that position (no event lost or repeated). Within a
///   generation, a worker configured with another count than the stored one stops with
///   [`OrchestratorError::ShardCountChanged`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recreate {
    /// The generation this worker belongs to (`None`: the current one).
    pub generation: Option<i64>,
    /// How often the worker heartbeats and reconciles its shards (default 5 s).
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before a worker counts as gone and its shards move
    /// (default 30 s). Must be above the heartbeat interval.
    pub stale_threshold: Duration,
    /// The number of shards of every projection (default 8: up to 8 workers share each
    /// projection). Change it with a new generation (see above).
    pub shards_per_projection: u32,
}

impl Default for Recreate {
    fn default() -> Self {
        Self {
            generation: None,
            heartbeat_interval: Duration::from_secs(5),
            stale_threshold: Duration::from_secs(30),
            shards_per_projection: 8,
        }
    }
}

impl Recreate {
    /// Starts (or joins) generation `generation` instead of joining the current one.
    pub fn generation(mut self, generation: i64) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Sets the heartbeat (and reconcile) interval.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets the stale threshold.
    pub fn stale_threshold(mut self, threshold: Duration) -> Self {
        self.stale_threshold = threshold;
        self
    }

    /// Sets the number of shards per projection.
    pub fn shards_per_projection(mut self, shards: u32) -> Self {
        self.shards_per_projection = shards;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), OrchestratorError> {
        let invalid = |reason: String| Err(OrchestratorError::InvalidSettings { reason });
        if self.heartbeat_interval.is_zero() {
            return invalid("the heartbeat interval must be above zero".into());
        }
        if self.stale_threshold <= self.heartbeat_interval {
            return invalid(format!(
                "the stale threshold ({:?}) must be above the heartbeat interval ({:?})",
                self.stale_threshold, self.heartbeat_interval
            ));
        }
        if validate_shard_count(self.shards_per_projection).is_err() {
            return invalid(format!(
                "shards per projection must be 1 to {MAX_SHARDS}, not {}",
                self.shards_per_projection
            ));
        }
        if self.generation.is_some_and(|g| g < 1 || g == i64::MAX) {
            return invalid("a generation must be 1 to i64::MAX - 1".into());
        }
        Ok(())
    }
}
