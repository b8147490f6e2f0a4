//! The [`Projection`] trait users implement, and its type-erased form the processor runs.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use pupsourcing_core::projection::Scope;
use pupsourcing_core::{EventStore, RecordedEvent};

/// What a handler returns when it cannot handle an event: any error.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A projection: turns events of the log into a read model.
///
/// The processor hands each batch of in-scope events to [`Projection::handle_batch`] (by
/// default [`Projection::handle`] for each event, in position order) inside one transaction of
/// the backend (`conn` is `&mut sqlx::PgConnection` on PostgreSQL, `&mut
/// sqlx::SqliteConnection` on SQLite), then stores the checkpoint in the same transaction and
/// commits. Write the read model through `conn` and every event is applied exactly once, even
/// across crashes. Side effects outside the database (emails, HTTP calls) are at least once: a
/// batch whose transaction rolls back is handled again.
///
/// ```
/// use pupsourcing_core::projection::Scope;
/// use pupsourcing_core::{EventStore, RecordedEvent};
/// use pupsourcing_projection::{HandlerError, Projection};
///
/// /// Counts orders in memory (a real projection writes rows through `conn`).
/// struct OrderCount(std::sync::atomic::AtomicU64);
///
/// impl<S: EventStore> Projection<S> for OrderCount {
///     fn name(&self) -> &str {
///         "order_count"
///     }
///     fn scope(&self) -> Scope {
///         Scope::all().event_types(["OrderPlaced"])
///     }
///     async fn handle(&self, _conn: &mut S::Connection, _event: &RecordedEvent) -> Result<(), HandlerError> {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// ```
pub trait Projection<S: EventStore>: Send + Sync + 'static {
    /// The projection's unique name: its checkpoints and dead letters are stored under it.
    /// Renaming a projection starts it over from position 0.
    fn name(&self) -> &str;

    /// The events it handles (default: every event). Filtered in SQL: events out of scope
    /// are never fetched.
    fn scope(&self) -> Scope {
        Scope::all()
    }

    /// Handles one event inside the batch's transaction.
    fn handle(
        &self,
        conn: &mut S::Connection,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Handles a batch inside one transaction; override it to write many rows in one
    /// statement. The processor may also call it with a part of a batch (one event at a time
    /// while it looks for an event that fails), so it must not assume batch boundaries.
    fn handle_batch(
        &self,
        conn: &mut S::Connection,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for event in events {
                self.handle(conn, event).await?;
            }
            Ok(())
        }
    }

    /// Clears the read model, in the transaction that removes the projection's checkpoints
    /// (see [`crate::reset()`]). Default: nothing to clear.
    fn reset(
        &self,
        conn: &mut S::Connection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = conn;
        async { Ok(()) }
    }
}

/// A shared projection is a projection: one value can serve several processors (its
/// partitions, say) while the caller keeps a handle on it.
impl<S: EventStore, P: Projection<S>> Projection<S> for Arc<P> {
    fn name(&self) -> &str {
        P::name(self)
    }

    fn scope(&self) -> Scope {
        P::scope(self)
    }

    fn handle(
        &self,
        conn: &mut S::Connection,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        P::handle(self, conn, event)
    }

    fn handle_batch(
        &self,
        conn: &mut S::Connection,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        P::handle_batch(self, conn, events)
    }

    fn reset(
        &self,
        conn: &mut S::Connection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        P::reset(self, conn)
    }
}

/// A projection behind a pointer, so that one runner holds projections of different types.
pub(crate) type SharedProjection<S> = Arc<dyn Erased<S>>;

/// [`Projection`] with boxed futures (the trait's `impl Future` methods are not object safe),
/// and panics turned into errors.
pub(crate) trait Erased<S: EventStore>: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn scope(&self) -> Scope;
    fn handle_batch<'a>(
        &'a self,
        conn: &'a mut S::Connection,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

impl<S: EventStore, P: Projection<S>> Erased<S> for P {
    fn name(&self) -> &str {
        Projection::name(self)
    }

    fn scope(&self) -> Scope {
        Projection::scope(self)
    }

    fn handle_batch<'a>(
        &'a self,
        conn: &'a mut S::Connection,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        caught(Projection::handle_batch(self, conn, events))
    }
}

/// Boxes a handler future and turns a panic inside it into an error: the batch's transaction
/// is then rolled back like after any handler error, and the poison policy applies.
pub(crate) fn caught<'a>(
    future: impl Future<Output = Result<(), HandlerError>> + Send + 'a,
) -> BoxFuture<'a, Result<(), HandlerError>> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .map(|outcome| outcome.unwrap_or_else(|panic| Err(panicked(panic.as_ref()).into())))
        .boxed()
}

/// The message of a caught panic.
fn panicked(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_string());
    format!("the handler panicked: {message}")
}
