//! Mapping of driver errors onto [`pupsourcing_core::Error`], and this crate's own error sources
//! (unreadable rows are core's [`CorruptRow`]).

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

/// A stored row that this crate cannot turn back into the model: core's, shared by every
/// backend so that a damaged row reads as the same error on each.
pub(crate) use pupsourcing_core::stored::CorruptRow;

/// `EventStore::commit` of a transaction SQLite had already ended (rolled back by an error such
/// as `SQLITE_FULL`, or by a statement of the caller's): nothing of it is stored.
#[derive(Debug, thiserror::Error)]
#[error("the transaction was not committed (nothing of it is stored): SQLite had already ended it")]
pub(crate) struct NotCommitted;
