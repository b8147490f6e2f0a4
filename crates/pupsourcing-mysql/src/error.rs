//! Mapping of driver errors onto [`pupsourcing_core::Error`], and this crate's own error sources
//! (unreadable rows are core's [`CorruptRow`]).

use pupsourcing_core::Error;
use sqlx::mysql::MySqlDatabaseError;

/// ER_DUP_ENTRY: a unique index refused a row.
pub(crate) const DUPLICATE_KEY: u16 = 1062;
/// ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back to break a deadlock.
pub(crate) const DEADLOCK: u16 = 1213;
/// ER_LOCK_WAIT_TIMEOUT: a lock wait passed `innodb_lock_wait_timeout`.
pub(crate) const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// The server's error number, when `err` is an error the server sent.
pub(crate) fn number(err: &sqlx::Error) -> Option<u16> {
    let db = err.as_database_error()?;
    db.try_downcast_ref::<MySqlDatabaseError>().map(MySqlDatabaseError::number)
}

/// Maps a sqlx error: a closed pool and an acquire timeout get their own variants, a deadlock
/// or a lock wait timeout is a retryable [`Error::TransactionConflict`], everything else is a
/// database error carrying the driver's error.
pub(crate) fn db(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::PoolClosed => Error::PoolClosed,
        sqlx::Error::PoolTimedOut => Error::Timeout,
        other => match number(&other) {
            Some(DEADLOCK | LOCK_WAIT_TIMEOUT) => Error::TransactionConflict(Box::new(other)),
            _ => Error::database(other),
        },
    }
}

/// A stored row that this crate cannot turn back into the model: core's, shared by every
/// backend so that a damaged row reads as the same error on each.
pub(crate) use pupsourcing_core::stored::CorruptRow;

/// `EventStore::commit` of (or an append in) a transaction the server had already ended (InnoDB
/// rolls a whole transaction back on a deadlock, after which the session runs in autocommit
/// mode): nothing of it is stored, except what later statements committed on their own.
#[derive(Debug, thiserror::Error)]
#[error(
    "the transaction was not committed: the server had already ended it (rolled back by a \
     deadlock, or by a statement of yours)"
)]
pub(crate) struct NotCommitted;
