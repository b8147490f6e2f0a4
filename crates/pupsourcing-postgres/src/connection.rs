//! Connections of the store's own: pooled ones for its writes, which must never go back to the
//! pool inside a transaction, and the ones it keeps for its one-statement calls.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pupsourcing_core::group::BoxFuture;
use pupsourcing_core::{Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::Notify;

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

/// Most connections a store keeps for its one-statement calls ([`KeptConnections`]).
pub(crate) const MAX_KEPT: usize = 4;

/// Connections of the store's own for its one-statement calls in autocommit mode, kept from
/// one call to the next instead of going back to a pool. sqlx pings every connection given back
/// to a pool: one more round trip per call, which on a busy small server cost the command
/// executor's first read of a boundary as much as the read's own statement (docs/benchmarks.md,
/// "tenth"). A store has two sets, opened from its pool's connect options on first need, in
/// addition to the pool's:
/// - up to [`MAX_KEPT`] for its DCB reads ([`pupsourcing_core::dcb::DcbStore::read`]), its
///   appends that run alone (a lone single event, a batch) and its wake-up notifications; a
///   call that finds none free, or cannot open one, uses the pool ([`KeptConnections::run`]);
/// - one per group-commit writer slot, with the writers' session settings
///   (`append/group.rs`); a group that finds none is not appended ([`KeptConnections::try_run`]).
///
/// A connection goes back to the list after a call that succeeded, or that failed on a
/// connection that still answers a ping; a broken one, and one whose call was cancelled (the
/// caller's future dropped, a time limit: it may still hold an unread answer, or sit inside a
/// transaction), is closed instead. A kept connection is not pinged before a call: one the
/// server ended while it sat idle fails its next call, which then runs again on the pool.
/// Like the pool's connections, one idle longer than the pool's idle timeout, or open longer
/// than its maximum lifetime, is closed instead of being used (sqlx's defaults: 10 and 30
/// minutes), so that none stays in use for ever. The check is by timer only: a connection that
/// a firewall or NAT dropped silently within those limits still holds its next call until the
/// operating system gives up on the socket, which then runs again on the pool; a NAT that drops
/// idle connections sooner needs a shorter idle timeout on the pool.
#[derive(Debug)]
pub(crate) struct KeptConnections {
    options: PgConnectOptions,
    /// The pool's acquire timeout, which bounds an open: a server that accepts the socket but
    /// never answers would otherwise hold a call without a time limit forever.
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    /// The pool's idle timeout and maximum lifetime, applied to kept connections too.
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    /// Most connections open at once.
    max: usize,
    /// Connections open, idle or in use, plus slots reserved by opens under way.
    open: AtomicUsize,
    closed: AtomicBool,
    /// Woken when `open` drops to zero: `close` waits for it.
    all_returned: Notify,
}

impl KeptConnections {
    /// Up to `max` connections, opened from `pool`'s connect options.
    pub(crate) fn new(pool: &PgPool, max: usize) -> Self {
        Self {
            options: (*pool.connect_options()).clone(),
            connect_timeout: pool.options().get_acquire_timeout(),
            idle: Mutex::new(Vec::new()),
            idle_timeout: pool.options().get_idle_timeout(),
            max_lifetime: pool.options().get_max_lifetime(),
            max,
            open: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            all_returned: Notify::new(),
        }
    }

    /// Opens the connections with these session settings too.
    pub(crate) fn with_settings(mut self, settings: &[(&str, &str)]) -> Self {
        self.options = self.options.options(settings.iter().copied());
        self
    }

    /// Runs `call` with `context` on a kept connection when one is free, else on a connection
    /// of `pool` ([`OwnConnection`]: closed, not returned, if the call is cancelled). A
    /// database error on a connection kept from an earlier call that then fails a ping runs
    /// `call` once more on the pool: the server may have ended that connection while it sat
    /// idle (a restart, an idle timeout), which a pool that pings before it hands a connection
    /// out would have caught. So `call` must be safe to run twice: a read, or an append
    /// (idempotent by event id: if the first run was stored after all, the second is a replay
    /// with its positions). An error on a connection that still answers is the call's own
    /// (a statement timeout, a failed condition) and is returned as it is.
    ///
    /// (`call` is a function of its context rather than a closure: a closure returning a future
    /// that borrows both its captures and the connection cannot be named in stable Rust, and
    /// async closures' futures are not yet proved `Send`.)
    pub(crate) async fn run<C: Sync + ?Sized, T>(
        &self,
        pool: &PgPool,
        context: &C,
        call: for<'c> fn(&'c C, &'c mut PgConnection) -> BoxFuture<'c, Result<T>>,
    ) -> Result<T> {
        if pool.is_closed() {
            // Its owner closed the pool without `PgEventStore::close` (a store made with
            // `PgEventStore::new` on the caller's pool): the kept connections follow it, or
            // they would go on serving calls (test `a_store_whose_pool_was_closed_serves_no_call`).
            self.close().await;
            return Err(Error::PoolClosed);
        }
        if let Some(result) = self.try_run(context, call).await {
            return result;
        }
        let mut conn = OwnConnection::acquire(pool).await?;
        let result = call(context, &mut conn).await;
        conn.finish(result)
    }

    /// [`KeptConnections::run`] without the pool: `None` when no connection was free or could
    /// be opened, or when a database error came from a connection kept from an earlier call
    /// that then failed a ping (`call` may be run again elsewhere).
    pub(crate) async fn try_run<C: Sync + ?Sized, T>(
        &self,
        context: &C,
        call: for<'c> fn(&'c C, &'c mut PgConnection) -> BoxFuture<'c, Result<T>>,
    ) -> Option<Result<T>> {
        let mut conn = self.take().await?;
        let result = call(context, &mut conn).await;
        let kept = conn.kept;
        let alive = conn.finish(&result).await;
        // Test `a_kept_connection_ended_by_the_server_fails_no_read`.
        (alive || !kept || !matches!(result, Err(Error::Database(_)))).then_some(result)
    }

    /// A kept connection, or a new one while fewer than `max` are open; `None` when
    /// every one is busy, a new one could not be opened, or the store is closed.
    async fn take(&self) -> Option<KeptConnection<'_>> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        loop {
            let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some(Idle { conn, opened, since }) = idle else { break };
            if self.expired(opened, since) {
                // Dropping it closes its socket (test `kept_connections_are_recycled`).
                drop(conn);
                self.release();
                continue;
            }
            let kept =
                KeptConnection { owner: self, conn: Some(conn), opened, keep: false, kept: true };
            return Some(kept);
        }
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.max {
            // Through `release`: the others may all have been given back meanwhile, and a
            // `close` waiting for the count to reach zero must hear that it did.
            self.release();
            return None;
        }
        // From here the slot is the connection's: dropped without a connection (a failed or
        // cancelled connect), it gives the slot back.
        let opened = Instant::now();
        let mut taken =
            KeptConnection { owner: self, conn: None, opened, keep: false, kept: false };
        // Checked again after the slot is counted: `close` sets the flag, then waits for the
        // count to reach zero (both sequentially consistent), so either it waits for this
        // slot or this sees the flag; a connection opened after `close` returned would write
        // after it. (A race too narrow for a test to hit reliably.)
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let connect = PgConnection::connect_with(&self.options);
        taken.conn = Some(tokio::time::timeout(self.connect_timeout, connect).await.ok()?.ok()?);
        Some(taken)
    }

    /// Closes the kept connections, and waits for those in use to be closed when their calls
    /// end, as a pool's close waits for its connections to be returned: once it returns,
    /// nothing more is written through them (test `close_waits_for_the_appends_in_flight`).
    /// Later calls use the pool (which the store closes too).
    pub(crate) async fn close(&self) {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Set under the lock that a connection's drop checks it under: a call that saw
            // the flag unset has pushed its connection before this takes the list.
            self.closed.store(true, Ordering::SeqCst);
            std::mem::take(&mut *idle)
        };
        for idle in idle {
            self.release();
            let _ = idle.conn.close().await;
        }
        loop {
            // Registered before the count is read, so a release in between is not missed.
            let returned = self.all_returned.notified();
            let mut returned = std::pin::pin!(returned);
            returned.as_mut().enable();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            returned.await;
        }
    }

    /// Whether a connection opened at `opened`, idle since `since`, sat idle or has been open
    /// too long to be used again.
    fn expired(&self, opened: Instant, since: Instant) -> bool {
        let past =
            |limit: Option<Duration>, from: Instant| limit.is_some_and(|l| from.elapsed() >= l);
        past(self.idle_timeout, since) || past(self.max_lifetime, opened)
    }

    /// Gives a slot back; the last one wakes a `close` waiting for them.
    fn release(&self) {
        if self.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.all_returned.notify_waiters();
        }
    }
}

/// A connection in the idle list: when it was opened, and since when it has been idle.
#[derive(Debug)]
struct Idle {
    conn: PgConnection,
    opened: Instant,
    since: Instant,
}

/// A connection taken from [`KeptConnections`] for one call.
struct KeptConnection<'a> {
    owner: &'a KeptConnections,
    conn: Option<PgConnection>,
    /// When the connection was opened (for the maximum lifetime).
    opened: Instant,
    /// Whether it goes back to the list when dropped: set by a call that ended as it should.
    keep: bool,
    /// Taken from the idle list (rather than opened for this call): it may have been ended by
    /// the server while it sat there.
    kept: bool,
}

impl KeptConnection<'_> {
    /// Whether the connection still works after `result`, and so is kept for the next call.
    /// After a success, yes: the call committed whatever it began. After an error it is
    /// pinged (within the connect timeout) and kept only if it answers: a broken connection
    /// fails the ping, and the call may have dropped a transaction on the way, whose ROLLBACK
    /// sqlx only queues, to be sent with the connection's next statement; until then the
    /// server would keep the transaction open with its locks (the pool's release ping sends it
    /// for pooled connections). The ping sends it (test
    /// `a_failed_append_in_a_transaction_of_the_stores_own_leaves_no_transaction_open`).
    async fn finish<T>(mut self, result: &Result<T>) -> bool {
        self.keep = match result {
            Ok(_) => true,
            Err(_) => {
                let ping = tokio::time::timeout(self.owner.connect_timeout, self.ping());
                matches!(ping.await, Ok(Ok(())))
            }
        };
        self.keep
    }
}

impl Drop for KeptConnection<'_> {
    fn drop(&mut self) {
        let owner = self.owner;
        if let Some(conn) = self.conn.take().filter(|_| self.keep) {
            let mut idle = owner.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the lock: after `close` took the list, a connection pushed here
            // would stay open until the store is dropped.
            if !owner.closed.load(Ordering::SeqCst) {
                idle.push(Idle { conn, opened: self.opened, since: Instant::now() });
                return;
            }
        }
        // Dropping a connection closes its socket; the server ends the session.
        owner.release();
    }
}

impl Deref for KeptConnection<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a kept connection holds its connection until dropped")
    }
}

impl DerefMut for KeptConnection<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a kept connection holds its connection until dropped")
    }
}
