//! The orchestrator of pupsourcing: projections run across any number of identical worker
//! processes, coordinated only through the database
//! ([`pupsourcing_core::coordination::CoordinationStore`]).
//!
//! Work in progress (issue 11): so far the shard assignment plan ([`assign`]); the workers,
//! heartbeats, the Recreate strategy and fenced processors build on it.

#![warn(missing_docs)]

mod assignment;

pub use assignment::{Move, assign};
