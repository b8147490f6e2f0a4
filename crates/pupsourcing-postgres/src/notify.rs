//! Wake-ups for projections: after its own commits, a store sends one `NOTIFY` on the log's
//! channel from a task of its own (coalesced, never inside an append transaction), and
//! [`PgEventStore::wakeups`] turns the channel into a [`watch::Receiver`] for processors.
//!
//! Why outside the appends: PostgreSQL serialises the commits of every transaction that sent a
//! NOTIFY on one cluster-wide lock. A NOTIFY per append would put every append in that queue;
//! here only the notifier's own small transactions are, one at a time, at most one per
//! [`MIN_INTERVAL`], however many appends committed meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use pupsourcing_core::projection::murmur3_32;
use pupsourcing_core::{Result, StoreConfig};
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};

use crate::error::db_error;
use crate::store::PgEventStore;

/// The shortest time between two notifications of one store.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(5);

/// The notification, in a transaction that commits without waiting for its WAL flush.
const NOTIFY: &str = "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')";

/// How long the listener waits before it listens again after an error.
const RELISTEN_AFTER: Duration = Duration::from_millis(500);

/// The notifying half, owned by the store.
#[derive(Debug)]
pub(crate) struct Notifier {
    /// Whether the store notifies at all ([`PgEventStore::with_notifications`]).
    pub enabled: AtomicBool,
    /// The channel, derived from the schema and events table.
    pub channel: String,
    /// Woken after each commit; its single permit coalesces commits into one notification.
    poke: Arc<Notify>,
    started: AtomicBool,
    /// A commit happened that no notification has covered yet: `close` sends it, so a
    /// short-lived process (a CLI append) does not exit with it unsent.
    pending: AtomicBool,
    /// Held from clearing `pending` until the notification is sent, by the task and by
    /// `close`: a close never finds `pending` cleared while the task's send is still under way
    /// (and then closes the pool under it).
    sending: tokio::sync::Mutex<()>,
}

impl Notifier {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        Self {
            enabled: AtomicBool::new(true),
            channel: channel(config),
            poke: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            sending: tokio::sync::Mutex::new(()),
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // Lets the task see that the store is gone and end.
        self.poke.notify_one();
    }
}

/// The channel of a store's log: `pupsourcing_` and a hash of its schema and events table
/// (a short, valid identifier for any configuration; stores of one log share it).
pub(crate) fn channel(config: &StoreConfig) -> String {
    let log = format!("{}.{}", config.schema.as_str(), config.tables.events.as_str());
    format!("pupsourcing_{:08x}", murmur3_32(log.as_bytes()))
}

impl PgEventStore {
    /// Says that the store committed events: the notifier task (started on first use) sends
    /// one NOTIFY soon, for this and every other commit until then.
    pub(crate) fn committed(&self) {
        let notifier = self.notifier();
        if !notifier.enabled.load(Ordering::Relaxed) {
            return;
        }
        notifier.pending.store(true, Ordering::Release);
        if !notifier.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(notify_loop(Arc::downgrade(self.inner_arc()), notifier.poke.clone()));
        }
        notifier.poke.notify_one();
    }

    /// Sends the notification of commits no notification has covered yet, now (before the
    /// store closes its pool; a failure only means listeners poll).
    pub(crate) async fn flush_notification(&self) {
        let notifier = self.notifier();
        let _sending = notifier.sending.lock().await;
        if notifier.enabled.load(Ordering::Relaxed)
            && notifier.pending.swap(false, Ordering::AcqRel)
        {
            let _ = self.notify().await;
        }
    }

    /// Sends one notification on the log's channel, on a kept connection when one is free
    /// (connection.rs; sending it twice, as a retry on the pool may, only wakes listeners
    /// twice).
    async fn notify(&self) -> Result<()> {
        let channel = self.notifier().channel.as_str();
        self.kept()
            .run(self.pool(), channel, |channel, conn| {
                Box::pin(async move {
                    let sent = sqlx::query(NOTIFY).bind(channel).execute(conn).await;
                    sent.map(drop).map_err(db_error)
                })
            })
            .await
    }

    /// The channel this store notifies after its commits, and [`PgEventStore::wakeups`]
    /// listens on: `pupsourcing_` and a hash of the schema and events table, so every store of
    /// one log shares it (`LISTEN` on it in psql to watch appends).
    pub fn notification_channel(&self) -> &str {
        &self.notifier().channel
    }

    /// Turns the notifications after appends on or off (on by default). With them off,
    /// processors in other processes see new events only at their next poll.
    pub fn with_notifications(self, on: bool) -> Self {
        self.notifier().enabled.store(on, Ordering::Relaxed);
        self
    }

    /// A channel that changes shortly after any store of this log (in any process) commits
    /// an append: pass it to `Processor::wake_on` or `Runner::wake_on` so that idle
    /// processors read at once instead of at their next poll.
    ///
    /// It listens on a connection of its own (outside the pool). When that connection is
    /// lost, the receiver is woken (so processors read once) and it listens again on a new
    /// one; processors keep polling meanwhile. It stops when every receiver is dropped.
    /// Appends committed by a caller's own `COMMIT` on a transaction not ended through
    /// [`pupsourcing_core::EventStore::commit`] send no notification: polling finds them.
    pub async fn wakeups(&self) -> Result<watch::Receiver<()>> {
        let channel = self.notifier().channel.clone();
        let mut listener = PgListener::connect_with(self.pool()).await.map_err(db_error)?;
        listener.listen(&channel).await.map_err(db_error)?;
        let (wake, receiver) = watch::channel(());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = wake.closed() => return,
                    received = listener.try_recv() => {
                        // A notification, or a lost connection (`None`; the next call
                        // reconnects and listens again): either way, look at the log.
                        wake.send_replace(());
                        if let Err(error) = received {
                            tracing::warn!(%error, "projection wake-up listener failed; retrying");
                            tokio::time::sleep(RELISTEN_AFTER).await;
                        }
                    }
                }
            }
        });
        Ok(receiver)
    }
}

/// Sends one NOTIFY per wake-up, at most one per [`MIN_INTERVAL`], until the store is gone.
async fn notify_loop(store: Weak<crate::store::Inner>, poke: Arc<Notify>) {
    loop {
        poke.notified().await;
        let Some(inner) = store.upgrade() else { return };
        let store = PgEventStore::from_inner(inner);
        let sending = store.notifier().sending.lock().await;
        // Cleared before sending: a commit after this sets it again and pokes once more.
        store.notifier().pending.store(false, Ordering::Release);
        // A NOTIFY commits a transaction of its own with an id, which would wait for its WAL
        // flush like an append: asynchronous commit spares the appends that competition (a
        // notification lost in a crash costs nothing: processors poll).
        if let Err(error) = store.notify().await {
            if store.pool().is_closed() {
                return;
            }
            tracing::debug!(%error, "could not notify projections; they will poll");
        }
        drop(sending);
        drop(store);
        tokio::time::sleep(MIN_INTERVAL).await;
    }
}
