//! # pupsourcing
//!
//! Event sourcing on the relational database you already run. An event store with aggregate
//! streams, optimistic concurrency and gap-free global reads, on PostgreSQL (feature
//! `postgres`) or embedded SQLite (feature `sqlite`, on by default).
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn demo() -> pupsourcing::Result<()> {
//! use pupsourcing::sqlite::SqliteEventStore;
//! use pupsourcing::{EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId};
//!
//! let store = SqliteEventStore::connect("sqlite://app.db", StoreConfig::default()).await?;
//! store.migrate().await?;
//! let account = StreamId::new("Account", uuid::Uuid::now_v7());
//! let opened = NewEvent::json("AccountOpened", &serde_json::json!({ "owner": "ada" }))?;
//! store.append(&account, ExpectedVersion::NoStream, &[opened]).await?;
//! # Ok(()) }
//! ```
//!
//! Appends take the caller's `sqlx` transaction, so the `sqlx` major version (0.9) is part of
//! this crate's API; it is re-exported as [`sqlx`].

#![warn(missing_docs)]

pub use pupsourcing_core::dcb;
pub use pupsourcing_core::{
    AppendResult, Error, EventStore, EventStream, ExpectedVersion, Identifier, Limits, NewEvent,
    Position, RecordedEvent, Result, StoreConfig, StreamId, TableNames, Timeouts, ValidationError,
    Version, VersionRange, validate_batch,
};
pub use sqlx;

/// Projections: the [`projection::Projection`] trait, exactly-once processors, a runner and
/// status (from `pupsourcing-projection`), with the storage types they share with the backends
/// (scopes, partitions, checkpoints, dead letters).
pub mod projection {
    pub use pupsourcing_core::projection::*;
    pub use pupsourcing_projection::*;
}

/// The orchestrator: projections run across any number of identical worker processes, their
/// shards assigned automatically and fenced, coordinated only through the database (from
/// `pupsourcing-orchestrator`), with the coordination types the backends store (workers,
/// generations, shards).
pub mod orchestrator {
    pub use pupsourcing_core::coordination::*;
    pub use pupsourcing_orchestrator::*;
}

/// The PostgreSQL backend (feature `postgres`).
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use pupsourcing_postgres::{PgEventStore, migration_sql};
}

/// The MySQL / MariaDB backend (feature `mysql`).
#[cfg(feature = "mysql")]
pub mod mysql {
    pub use pupsourcing_mysql::{MySqlEventStore, migration_sql};
}

/// The embedded SQLite backend (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use pupsourcing_sqlite::{SqliteEventStore, migration_sql};
}

/// The README's Rust snippets, compiled (not run: they need a server) by `cargo test` as
/// doctests, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeSnippets;
