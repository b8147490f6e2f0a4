//! Why an orchestrator could not be built or stopped with an error.

use std::time::Duration;

use pupsourcing_projection::ProjectionError;

/// Why [`crate::OrchestratorBuilder::build`] refused its settings, or why
/// [`crate::Orchestrator::run`] stopped with an error. Each variant says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// `build()` was given no projection: add at least one with `.projection(..)`.
    #[error("the orchestrator has no projection to run: add one with .projection(..)")]
    NoProjections,
    /// Two projections share a name (their shards and checkpoints would be the same rows):
    /// rename one.
    #[error("projection {name:?} is added twice: projection names must be unique")]
    DuplicateProjection {
        /// The name.
        name: String,
    },
    /// A strategy setting is out of range: fix it as the reason says.
    #[error("invalid orchestrator setting: {reason}")]
    InvalidSettings {
        /// What is wrong.
        reason: String,
    },
    /// A projection or its processor settings were refused (empty name, invalid scope, bad
    /// batch size): fix the projection.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The coordination store failed where the worker cannot go on (registering, or the
    /// generation it was started with is refused): check the database and the migration of
    /// the coordination tables, then start the worker again.
    #[error("coordination store: {0}")]
    Store(#[from] pupsourcing_core::Error),
    /// This worker's row was removed because its heartbeats stopped for longer than the stale
    /// threshold (a long pause, or the database was unreachable); its shards were given to
    /// other workers and its processors were stopped. Start the worker again (it registers
    /// under a new id); if it happens often, raise the stale threshold.
    #[error(
        "worker {worker} was removed as stale (no heartbeat for {threshold:?}): its shards moved; start it again"
    )]
    Evicted {
        /// The worker's id.
        worker: String,
        /// The stale threshold in force.
        threshold: Duration,
    },
    /// The shard rows of a projection have another shard count than this worker's settings,
    /// within one generation. The count changes only at a generation boundary: deploy the new
    /// count with a new generation ([`crate::Recreate::generation`]), or keep the stored one.
    #[error(
        "projection {projection:?} is stored with {stored} shards but configured with {configured}: change the shard count with a new generation (Recreate::generation), or keep {stored}"
    )]
    ShardCountChanged {
        /// The projection.
        projection: String,
        /// The count in the shard rows.
        stored: u32,
        /// The count in this worker's settings.
        configured: u32,
    },
}
