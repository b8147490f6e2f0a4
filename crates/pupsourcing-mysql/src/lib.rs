//! The MySQL / MariaDB backend of pupsourcing.
//!
//! [`MySqlEventStore`] implements [`pupsourcing_core::EventStore`] and
//! [`pupsourcing_core::dcb::DcbStore`] on InnoDB (MariaDB 10.6+ or MySQL 8.0.29+; tested on
//! MariaDB 10.11) through [sqlx](https://docs.rs/sqlx) 0.9, re-exported as [`sqlx`] (appends
//! join the caller's `sqlx::Transaction<'static, sqlx::MySql>`).
//!
//! - Gap-free global reads: positions come from one counter row whose lock every append holds
//!   from allocation to commit, so commits happen in position order and the counter's committed
//!   value is the head (see `read`). The allocation, the inserts and the COMMIT are text
//!   statements of literals sent in one round trip, after every lock wait and check: the
//!   serialised section is that round trip (see `append`).
//! - Sound DCB conditions without SERIALIZABLE: one row per lock key of core's lock plan, taken
//!   shared by appends and exclusively by conditions, in key order (see `dcb::locks`).
//! - Optimistic concurrency on an O(1) heads row, idempotent re-appends by the unique event id.
//! - Projections ([`pupsourcing_core::projection::ProjectionStore`]): batches filtered in SQL by
//!   scope and by the partition hash stored at append, checkpoints moved by compare-and-set in
//!   the caller's transaction, dead letters, and the append holding the head back (see
//!   `checkpoint`).
//! - The orchestrator's coordination ([`pupsourcing_core::coordination::CoordinationStore`]):
//!   workers with heartbeats on the database clock, the Recreate generation, and shards whose
//!   owner and epoch fence every batch commit (see `coordination`).
//! - The store's own transactions run at READ COMMITTED, on sessions in strict SQL mode.
//! - Every SQL statement lives in a `.sql` file beside the module that runs it, rendered once per
//!   store with the configured names; the append's values travel as hex literals
//!   (`append/literal.rs`) or bound parameters, never as text spliced as it is.

#![warn(missing_docs)]

mod append;
mod checkpoint;
mod connection;
mod coordination;
mod dcb;
mod error;
mod migrate;
mod read;
mod sql;
mod store;

pub use migrate::{migration_script, migration_sql};
pub use sqlx;
pub use store::MySqlEventStore;
