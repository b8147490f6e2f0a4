//! Mapping driver errors to the store's typed errors.

use pupsourcing_core::Error;

/// Column `index` of `row`, a decoding failure as a database error.
pub(crate) fn column<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r sqlx::postgres::PgRow,
    index: usize,
) -> pupsourcing_core::Result<T> {
    sqlx::Row::try_get(row, index).map_err(db_error)
}

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

/// Converts an append statement's error: like [`db_error`], and an integer overflow of the
/// stream's version (22003) or the exhausted position sequence (2200H) is the typed
/// [`ValidationError::OutOfRange`](pupsourcing_core::ValidationError::OutOfRange).
pub(crate) fn append_error(err: sqlx::Error) -> Error {
    use pupsourcing_core::ValidationError::{self, OutOfRange};
    let code = err.as_database_error().and_then(|db| db.code()).map(|c| c.into_owned());
    match code.as_deref() {
        Some("22003") => Error::Validation(ValidationError::VERSION_OVERFLOW),
        Some("2200H") => Error::Validation(OutOfRange {
            field: "global position",
            reason: "the position sequence reached the largest 64-bit integer",
        }),
        _ => db_error(err),
    }
}

/// `EventStore::commit` of a transaction the server had already ended: aborted by an earlier
/// failed statement (PostgreSQL answers COMMIT of such a transaction with a silent ROLLBACK),
/// or ended by a statement of the caller's.
#[derive(Debug, thiserror::Error)]
#[error("the transaction was not committed (nothing of it is stored): {source}")]
pub(crate) struct NotCommitted {
    #[source]
    pub(crate) source: sqlx::Error,
}

/// `EventStore::commit` of a transaction that a statement of the caller's (`COMMIT`,
/// `ROLLBACK`) had already ended: that statement decided what is stored, not this call.
#[derive(Debug, thiserror::Error)]
#[error(
    "no transaction was open to commit: a statement of yours (COMMIT or ROLLBACK) ended it, and \
     what it wrote is stored or not as that statement decided: {source}"
)]
pub(crate) struct EndedByCaller {
    #[source]
    pub(crate) source: sqlx::Error,
}
