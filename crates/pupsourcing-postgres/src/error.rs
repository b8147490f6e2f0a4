//! Mapping driver errors to the store's typed errors.

use pupsourcing_core::Error;

/// Converts a sqlx error into [`Error`], keeping the typed cases callers act on.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::PoolClosed => Error::PoolClosed,
        sqlx::Error::PoolTimedOut => Error::Timeout,
        other => Error::database(other),
    }
}
