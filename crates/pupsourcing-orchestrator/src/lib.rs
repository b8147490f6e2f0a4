//! The orchestrator of pupsourcing: projections run across any number of identical worker
//! processes, coordinated only through the database
//! ([`pupsourcing_core::coordination::CoordinationStore`]).
//!
//! Work in progress (issue 11): so far the shard assignment plan ([`assign`]) and fenced
//! shard checkpoints for processors ([`FencedShard`]); the workers, heartbeats and the
//! Recreate strategy build on them.

#![warn(missing_docs)]

mod assignment;
mod fence;

pub use assignment::{Move, assign};
pub use fence::FencedShard;
