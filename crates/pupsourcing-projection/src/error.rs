//! Why a processor stopped.

use pupsourcing_core::projection::Partition;
use pupsourcing_core::{Position, ValidationError};

use crate::projection::HandlerError;

/// Why a processor (or a runner) stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// A setting was refused before anything ran.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store failed in a way retrying cannot fix (a database error that persists is
    /// retried, not returned).
    #[error("projection {projection} partition {partition}: {source}")]
    Store {
        /// The projection.
        projection: String,
        /// The partition.
        partition: Partition,
        /// The store's error.
        #[source]
        source: pupsourcing_core::Error,
    },
    /// The handler failed on an event and the poison policy stopped the partition. The
    /// checkpoint is just before the event, and the error is stored with it.
    #[error(
        "projection {projection} partition {partition} stopped at position {position} (event {event_id}) after {attempts} attempt(s): {source}"
    )]
    Handler {
        /// The projection.
        projection: String,
        /// The partition.
        partition: Partition,
        /// The failing event's position.
        position: Position,
        /// The failing event's id.
        event_id: uuid::Uuid,
        /// How many times the batch was tried.
        attempts: u32,
        /// The handler's error.
        #[source]
        source: HandlerError,
    },
    /// A reset's `reset` hook failed; nothing was reset.
    #[error("projection {projection}: its reset hook failed: {source}")]
    Reset {
        /// The projection.
        projection: String,
        /// The hook's error.
        #[source]
        source: HandlerError,
    },
}
