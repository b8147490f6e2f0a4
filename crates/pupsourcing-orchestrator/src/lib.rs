//! The orchestrator of pupsourcing: projections run across any number of identical worker
//! processes, coordinated only through the database
//! ([`pupsourcing_core::coordination::CoordinationStore`]).
//!
//! - [`Orchestrator`]: one worker: registers, heartbeats, takes its share of every
//!   projection's shards and runs a fenced processor on each; drains on shutdown or when a
//!   newer generation starts ([`Recreate`]).
//! - [`assign`]: the shard plan (balanced, sticky, deterministic).
//! - [`FencedShard`]: a processor's checkpoint kept in its shard row, fenced by owner and
//!   epoch.
//!
//! - [`status()`]: workers, generation and shards (owner, epoch, checkpoint, lag, last error).
//!
//! A projection's shard count changes at a generation boundary (see the `reshard` steps in
//! [`Recreate`]). Not yet: a Rolling strategy.

#![warn(missing_docs)]

mod assignment;
mod error;
mod fence;
mod orchestrator;
mod reshard;
mod status;
mod strategy;

pub use assignment::{Move, assign};
pub use error::OrchestratorError;
pub use fence::FencedShard;
pub use orchestrator::{Orchestrator, OrchestratorBuilder};
pub use pupsourcing_core::coordination::MAX_SHARDS;
pub use status::{OrchestratorStatus, ShardState, ShardStatus, WorkerStatus, status};
pub use strategy::Recreate;
