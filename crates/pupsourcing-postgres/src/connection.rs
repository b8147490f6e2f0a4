//! Pooled connections for the store's own writes, which must never go back to the pool inside
//! a transaction.

use std::ops::{Deref, DerefMut};

use pupsourcing_core::Result;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::error::db_error;

/// A pooled connection for a call that may open a transaction on it. sqlx's BEGIN is not
/// cancel-safe: a future dropped after BEGIN was sent returns the connection to the pool inside
/// a transaction sqlx does not count, where later autocommit calls would run, hold their locks
/// and never commit. So unless the call [`finished`](OwnConnection::finish), the connection is
/// closed on drop (which ends the transaction on the server) instead of returned.
pub(crate) struct OwnConnection {
    conn: PoolConnection<Postgres>,
    finished: bool,
}

impl OwnConnection {
    pub(crate) async fn acquire(pool: &PgPool) -> Result<Self> {
        let conn = pool.acquire().await.map_err(db_error)?;
        Ok(Self { conn, finished: false })
    }

    /// Marks the call finished (it committed, or ended its transaction on an error), so the
    /// connection returns to the pool; passes `result` through.
    pub(crate) fn finish<T>(mut self, result: T) -> T {
        self.finished = true;
        result
    }
}

impl Drop for OwnConnection {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

impl Deref for OwnConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for OwnConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}
