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
//! Not yet: changing a projection's shard count at a generation boundary, status reporting,
//! a Rolling strategy.

#![warn(missing_docs)]

mod assignment;
mod error;
mod fence;
mod orchestrator;
mod strategy;

pub use assignment::{Move, assign};
pub use error::OrchestratorError;
pub use fence::FencedShard;
pub use orchestrator::{Orchestrator, OrchestratorBuilder};
pub use strategy::{MAX_SHARDS, Recreate};
