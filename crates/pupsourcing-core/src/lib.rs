//! Core types of pupsourcing: the event model, identifiers, configuration, errors and the
//! [`EventStore`] trait that every backend implements. Nothing here performs I/O.
//!
//! Most users depend on the `pupsourcing` facade crate instead, which re-exports everything
//! below together with the backend selected by a cargo feature.

#![warn(missing_docs)]

pub mod append;
mod config;
mod connect;
pub mod coordination;
pub mod dcb;
mod error;
mod event;
pub mod group;
mod identifier;
pub mod projection;
mod schema;
mod store;
pub mod stored;
pub mod timeout;
mod validate;

pub use config::{StoreConfig, TableNames, Timeouts};
pub use connect::{ConnectError, ConnectOptions};
pub use error::{Error, Result, ValidationError};
pub use event::{NewEvent, Position, RecordedEvent, StreamId, Version};
pub use identifier::Identifier;
pub use schema::{SchemaStatus, SchemaTable};
pub use store::{AppendResult, EventStore, EventStream, ExpectedVersion, VersionRange};
pub use validate::{Limits, storable_timestamps, validate_batch, validate_position};
