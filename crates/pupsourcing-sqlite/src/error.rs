//! Mapping of driver errors and unreadable rows onto [`pupsourcing_core::Error`].

use pupsourcing_core::Error;

/// Maps a sqlx error: a closed pool, an acquire timeout and a stale snapshot get their own
/// variants, everything else is a database error carrying the driver's error.
pub(crate) fn db(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::PoolClosed => Error::PoolClosed,
        sqlx::Error::PoolTimedOut => Error::Timeout,
        // SQLITE_BUSY_SNAPSHOT (517): a deferred transaction read a snapshot that another writer
        // has since changed, so it cannot write; retrying the whole transaction succeeds.
        sqlx::Error::Database(e) if e.code().as_deref() == Some("517") => {
            Error::TransactionConflict(Box::new(sqlx::Error::Database(e)))
        }
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

/// `EventStore::commit` of a transaction SQLite had already ended (rolled back by an error such
/// as `SQLITE_FULL`, or by a statement of the caller's): nothing of it is stored.
#[derive(Debug, thiserror::Error)]
#[error("the transaction was not committed (nothing of it is stored): SQLite had already ended it")]
pub(crate) struct NotCommitted;
