//! PostgreSQL backend of pupsourcing.
//!
//! [`PgEventStore`] implements [`pupsourcing_core::EventStore`] and
//! [`pupsourcing_core::dcb::DcbStore`] on PostgreSQL 12 or later: appends in one round trip
//! (one statement for a single event, a server-side function otherwise), concurrent single-event
//! appends merged into one transaction (group commit), optimistic concurrency on an O(1)
//! `aggregate_heads` row, idempotent re-appends, and gap-free global reads capped at the lowest
//! in-flight writer (see ARCHITECTURE.md in the repository).
//!
//! It also implements [`pupsourcing_core::projection::ProjectionStore`]: every append stores
//! each event's partition hash (computed in Rust, in the append's own statement), and
//! projection batches are read gap-free, filtered by scope and partition in SQL, with
//! checkpoints moved by compare-and-set in the batch's transaction.
//!
//! It also implements [`pupsourcing_core::coordination::CoordinationStore`] for the
//! orchestrator: workers with heartbeats on the database clock, the Recreate generation, and
//! shards whose batches commit only under their owner's epoch (the fence).
//!
//! Every SQL statement lives in a `.sql` file beside the module that runs it, rendered once per
//! store with the configured names; [`migration_sql`] renders the schema for a configuration.
//!
//! The [sqlx](https://docs.rs/sqlx) 0.9 it runs on is re-exported as [`sqlx`], so that a caller's
//! transaction (`sqlx::Transaction<'static, sqlx::Postgres>`, which `append_in` joins) names the
//! same crate version as the store.

#![warn(missing_docs)]

mod append;
mod checkpoint;
mod connection;
mod coordination;
mod dcb;
mod error;
mod migrate;
mod notify;
mod read;
mod sql;
mod store;

pub use migrate::migration_sql;
pub use sqlx;
pub use store::PgEventStore;
