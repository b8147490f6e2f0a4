//! Pooled connections for the store's own writes, which must never go back to the pool inside
//! a transaction.

use std::ops::{Deref, DerefMut};

use pupsourcing_core::Result;
use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlConnection, MySqlPool};

use crate::error::db;

/// A pooled connection for a call that opens a transaction on it. sqlx's BEGIN is not
/// cancel-safe: a future dropped after BEGIN was sent returns the connection to the pool inside
/// a transaction sqlx does not count, holding its locks (on this backend: maybe the position
/// counter, which would stop every writer). So unless the call
/// [`finished`](OwnConnection::finish), the connection is closed on drop, which ends the
/// transaction on the server.
pub(crate) struct OwnConnection {
    conn: PoolConnection<MySql>,
    finished: bool,
}

impl OwnConnection {
    pub(crate) async fn acquire(pool: &MySqlPool) -> Result<Self> {
        let conn = pool.acquire().await.map_err(db)?;
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
    type Target = MySqlConnection;

    fn deref(&self) -> &MySqlConnection {
        &self.conn
    }
}

impl DerefMut for OwnConnection {
    fn deref_mut(&mut self) -> &mut MySqlConnection {
        &mut self.conn
    }
}
