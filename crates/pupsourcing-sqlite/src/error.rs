//! Mapping of driver errors and unreadable rows onto [`pupsourcing_core::Error`].

use pupsourcing_core::Error;

/// Maps a sqlx error: a closed pool and an acquire timeout get their own variants, everything
/// else is a database error carrying the driver's error.
pub(crate) fn db(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::PoolClosed => Error::PoolClosed,
        sqlx::Error::PoolTimedOut => Error::Timeout,
        other => Error::database(other),
    }
}

/// A stored row that this crate cannot turn back into an event (written by something else, or
/// damaged). Reported as [`Error::Database`], never as a panic.
#[derive(Debug, thiserror::Error)]
#[error("unreadable {column} in table {table}: {reason}")]
pub(crate) struct CorruptRow {
    pub(crate) table: String,
    pub(crate) column: &'static str,
    pub(crate) reason: String,
}

impl CorruptRow {
    pub(crate) fn error(table: &str, column: &'static str, reason: impl ToString) -> Error {
        Error::database(CorruptRow { table: table.to_string(), column, reason: reason.to_string() })
    }
}
