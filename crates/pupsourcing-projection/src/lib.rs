//! Projections for pupsourcing: turn the event log into read models, exactly once.
//!
//! - [`Projection`]: a name, a scope and a handler that writes the read model in the
//!   backend's transaction.
//! - [`Processor`]: runs one partition of one projection: reads gap-free batches past its
//!   checkpoint (filtered in SQL by scope and partition), handles each in one transaction
//!   that also moves the checkpoint by compare-and-set, commits, repeats. Poison events
//!   follow a [`PoisonPolicy`].
//! - [`Runner`]: several projections and partitions in one process, stopped together by a
//!   cancellation token.
//! - [`status()`]: checkpoints, lag, errors, dead letters and stalls, for operators and alerts.
//!
//! Backends implement [`pupsourcing_core::projection::ProjectionStore`] (PostgreSQL and
//! SQLite do).

#![warn(missing_docs)]

mod checkpointing;
mod config;
mod error;
mod pass;
mod processor;
mod projection;
mod reset;
mod runner;
mod status;

pub use checkpointing::Checkpointing;
pub use config::{MAX_BATCH_SIZE, PoisonPolicy, ProcessorConfig};
pub use error::ProjectionError;
pub use processor::{Processor, Progress};
pub use projection::{HandlerError, Projection};
pub use reset::{replay_dead_letter, reset};
pub use runner::{Runner, RunnerReport};
pub use status::{PartitionState, ProjectionStatus, status};
pub use tokio_util::sync::CancellationToken;
