//! Mapping driver errors to the store's typed errors.

use pupsourcing_core::Error;

/// Converts a sqlx error into [`Error`], keeping the typed cases callers act on.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::PoolClosed => Error::PoolClosed,
        sqlx::Error::PoolTimedOut => Error::Timeout,
        // 40P01 deadlock_detected, 40001 serialization_failure: the transaction is aborted and a
        // retry may succeed.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")) => {
            Error::TransactionConflict(Box::new(sqlx::Error::Database(db)))
        }
        other => Error::database(other),
    }
}
