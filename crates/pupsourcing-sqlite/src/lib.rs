//! The SQLite backend of pupsourcing: an embedded event store for quickstarts, tests and
//! single-node applications.
//!
//! [`SqliteEventStore`] implements [`pupsourcing_core::EventStore`] on one SQLite database
//! through [sqlx](https://docs.rs/sqlx) 0.9 (re-exported as [`sqlx`]: appends can join the
//! caller's `sqlx::Transaction<'static, sqlx::Sqlite>`, so sqlx's major version is part of this
//! API).
//!
//! - Write transactions start with `BEGIN IMMEDIATE` on a one-connection write pool: the
//!   process's writers queue fairly for SQLite's single write lock, other processes' writers wait
//!   on the busy timeout, and none fails at once with `SQLITE_BUSY`.
//! - Appends check idempotency and the expected version in one statement, then insert the whole
//!   batch with one multi-row `INSERT`, index its tags and bump the stream's head.
//! - Reads of the global log are gap-free by construction: SQLite has a single writer at a time,
//!   so commits happen in position order.
//! - It also implements [`pupsourcing_core::dcb::DcbStore`] on the same log: DCB appends share
//!   the stream path's insert and idempotency code, every append fills a tag index, and an append
//!   condition is checked in the append's write transaction, right before the insert. SQLite's
//!   single writer serialises check and insert with every other append, so no locks are needed.
//! - It implements [`pupsourcing_core::projection::ProjectionStore`] for projections: batches
//!   filtered in SQL by scope and by the partition hash stored with every event at append,
//!   checkpoints that advance by compare-and-set in the caller's write transaction, and dead
//!   letters.
//! - It implements [`pupsourcing_core::coordination::CoordinationStore`] for the orchestrator:
//!   workers with heartbeats and stale-worker cleanup timed by SQLite's own clock, the Recreate
//!   generation as a compare-and-set on one row, and shards whose owner and epoch fence every
//!   batch commit.
//! - Every SQL statement lives in a `.sql` file beside the module that runs it, rendered once per
//!   store with the configured table names.

#![warn(missing_docs)]

mod append;
mod checkpoint;
mod coordination;
mod dcb;
mod error;
mod migrate;
mod read;
mod sql;
mod store;

pub use migrate::migration_sql;
pub use sqlx;
pub use store::SqliteEventStore;
