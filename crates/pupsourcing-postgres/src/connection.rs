//! Connections of the store's own: pooled ones for its writes, which must never go back to the
//! pool inside a transaction, and the kept ones of its reads.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pupsourcing_core::Result;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool, Postgres};

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

/// Most connections the store keeps for its own reads ([`Readers`]).
pub(crate) const MAX_READERS: usize = 4;

/// Connections of the store's own for its DCB reads ([`pupsourcing_core::dcb::DcbStore::read`]),
/// kept from one read to the next instead of going back to a pool. sqlx pings every connection
/// given back to a pool: one more round trip per call, which on a busy small server cost the
/// command executor's first read of a boundary as much as the read's own statement
/// (docs/benchmarks.md, "tenth"). Up to [`MAX_READERS`] are opened, from the pool's connect
/// options, in addition to the pool's (as group commit's writers are); a read that finds none
/// free, or cannot open one, uses the pool.
///
/// A connection goes back to the list only from a read that succeeded (in autocommit mode: no
/// transaction is ever open on it). One whose read was cancelled (the caller's future dropped,
/// a time limit) may still hold an unread answer, and one whose read failed may be broken: they
/// are closed instead. A kept connection is never pinged: one the server ended while it sat
/// idle fails its next read, which `DcbStore::read` then runs again on the pool.
#[derive(Debug)]
pub(crate) struct Readers {
    options: PgConnectOptions,
    /// The pool's acquire timeout, which bounds an open: a server that accepts the socket but
    /// never answers would otherwise hold a read without a time limit forever.
    connect_timeout: Duration,
    idle: Mutex<Vec<PgConnection>>,
    /// Connections open, idle or in use, plus slots reserved by opens under way.
    open: AtomicUsize,
    closed: AtomicBool,
}

impl Readers {
    pub(crate) fn new(pool: &PgPool) -> Self {
        Self {
            options: (*pool.connect_options()).clone(),
            connect_timeout: pool.options().get_acquire_timeout(),
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// A kept connection, or a new one while fewer than [`MAX_READERS`] are open; `None` when
    /// every one is busy, a new one could not be opened, or the store is closed.
    pub(crate) async fn take(&self) -> Option<Reader<'_>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let kept = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        if let Some(conn) = kept {
            return Some(Reader { readers: self, conn: Some(conn), finished: false, kept: true });
        }
        if self.open.fetch_add(1, Ordering::AcqRel) >= MAX_READERS {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        // From here the slot is the reader's: dropped unfinished (a failed or cancelled
        // connect included), it gives the slot back.
        let mut reader = Reader { readers: self, conn: None, finished: false, kept: false };
        let connect = PgConnection::connect_with(&self.options);
        reader.conn = Some(tokio::time::timeout(self.connect_timeout, connect).await.ok()?.ok()?);
        Some(reader)
    }

    /// Closes the kept connections; later reads use the pool (which the store closes too).
    pub(crate) async fn close(&self) {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Set under the lock that a reader's drop checks it under: a reader that saw the
            // flag unset has pushed its connection before this takes the list.
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *idle)
        };
        for conn in idle {
            self.open.fetch_sub(1, Ordering::AcqRel);
            let _ = conn.close().await;
        }
    }
}

/// A connection taken from [`Readers`] for one read.
pub(crate) struct Reader<'a> {
    readers: &'a Readers,
    conn: Option<PgConnection>,
    finished: bool,
    /// Taken from the idle list (rather than opened for this read): it may have been ended by
    /// the server while it sat there.
    kept: bool,
}

impl Reader<'_> {
    /// Keeps the connection for the next read when the read succeeded (its answer was read to
    /// the end); after an error (maybe a broken connection) it is closed. Passes `result`
    /// through.
    pub(crate) fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        self.finished = result.is_ok();
        result
    }

    /// Whether the connection was kept from an earlier read, rather than opened for this one.
    pub(crate) fn was_kept(&self) -> bool {
        self.kept
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let readers = self.readers;
        if let Some(conn) = self.conn.take().filter(|_| self.finished) {
            let mut idle = readers.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the lock: after `close` took the list, a connection pushed here
            // would stay open until the store is dropped.
            if !readers.closed.load(Ordering::Acquire) {
                idle.push(conn);
                return;
            }
        }
        // Dropping a connection closes its socket; the server ends the session.
        readers.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Deref for Reader<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a reader holds its connection until dropped")
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a reader holds its connection until dropped")
    }
}
