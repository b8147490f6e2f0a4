//! The [`EventStore`] trait every backend implements, and the types of its calls.

use std::future::Future;
use std::ops::DerefMut;
use std::pin::Pin;

use futures_core::Stream;

use crate::error::Result;
use crate::event::{NewEvent, Position, RecordedEvent, StreamId, Version};

/// What an append expects of the stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpectedVersion {
    /// Append whatever the version is (the append still serialises with other writers of the
    /// stream, and versions stay gap-free).
    #[default]
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (`Exact(0)` is the same as `NoStream`).
    Exact(Version),
}

impl ExpectedVersion {
    /// Whether an append expecting this may go on a stream now at version `current` (0 for
    /// no stream): the one rule every backend checks under the stream's lock.
    ///
    /// ```
    /// use pupsourcing_core::ExpectedVersion;
    /// assert!(ExpectedVersion::NoStream.allows(0) && ExpectedVersion::Exact(0).allows(0));
    /// assert!(!ExpectedVersion::Exact(2).allows(3) && ExpectedVersion::Any.allows(3));
    /// ```
    pub fn allows(self, current: Version) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(version) => current == version,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The global position of each event, in batch order: one contiguous, increasing block.
    pub positions: Vec<Position>,
    /// The aggregate version of each event, in batch order.
    pub versions: Vec<Version>,
    /// True when every event id was already stored: nothing was written, and the positions and
    /// versions are those of the original append (an idempotent retry).
    pub replayed: bool,
}

impl AppendResult {
    /// Position of the last event of the batch.
    pub fn last_position(&self) -> Position {
        self.positions.last().copied().unwrap_or_default()
    }

    /// The stream's version after the append.
    pub fn last_version(&self) -> Version {
        self.versions.last().copied().unwrap_or_default()
    }
}

/// An inclusive range of stream versions to read; `None` ends are open.
///
/// ```
/// use pupsourcing_core::VersionRange;
/// assert_eq!(VersionRange::from(5), VersionRange { from: Some(5), to: None });
/// assert_eq!(VersionRange::between(2, 4).to, Some(4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionRange {
    /// First version to return (inclusive).
    pub from: Option<Version>,
    /// Last version to return (inclusive).
    pub to: Option<Version>,
}

impl VersionRange {
    /// The whole stream.
    pub fn all() -> Self {
        Self::default()
    }

    /// From `version` (inclusive) to the end, e.g. after a snapshot.
    pub fn from(version: Version) -> Self {
        Self { from: Some(version), to: None }
    }

    /// From `from` to `to`, both inclusive.
    pub fn between(from: Version, to: Version) -> Self {
        Self { from: Some(from), to: Some(to) }
    }
}

/// A stream of events read from the global log, ending once the reader has caught up.
pub type EventStream<'a> = Pin<Box<dyn Stream<Item = Result<RecordedEvent>> + Send + 'a>>;

/// An event store backend: the operations the conformance suite checks on every database.
///
/// `append_in` and `read_stream_in` join a transaction the caller owns (transaction-agnostic
/// appends): pass `&mut *tx` for a `sqlx::Transaction` of the backend's database. The other calls
/// use the store's own pool and transactions.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// The backend's connection type, e.g. `sqlx::PgConnection`.
    type Connection: Send;
    /// A transaction on that connection, e.g. `sqlx::Transaction<'static, Postgres>`.
    type Transaction: DerefMut<Target = Self::Connection> + Send + 'static;

    /// Opens a transaction suitable for appends (on SQLite, a write transaction).
    fn begin(&self) -> impl Future<Output = Result<Self::Transaction>> + Send;

    /// Commits a transaction opened by [`EventStore::begin`].
    ///
    /// Returns `Ok` only when the database committed it. A transaction the database has
    /// already ended (on PostgreSQL, one aborted by a failed statement, which the server would
    /// answer with a silent rollback) fails with an error, and then nothing of it is stored.
    fn commit(&self, tx: Self::Transaction) -> impl Future<Output = Result<()>> + Send;

    /// Rolls back a transaction opened by [`EventStore::begin`]: nothing of it is stored.
    /// (Dropping the transaction rolls it back too, but only on the connection's next use, and
    /// without reporting an error.)
    fn rollback(&self, tx: Self::Transaction) -> impl Future<Output = Result<()>> + Send;

    /// Appends `events` to `stream` inside the caller's transaction, assigning consecutive
    /// versions after the stream's current one and one contiguous block of positions.
    ///
    /// Fails with [`crate::Error::Concurrency`] when `expected` does not hold. Nothing of a rejected
    /// append is written.
    ///
    /// # Cancellation
    ///
    /// Call it inside a transaction from [`EventStore::begin`]: dropping that transaction rolls
    /// everything back, a dropped append included. On a connection outside any transaction
    /// the append opens one of its own; on MySQL/MariaDB that takes more than one round trip,
    /// and a future dropped between them leaves the connection inside that transaction,
    /// holding the append's locks, without sqlx knowing (neither a pool nor the next caller
    /// rolls it back). Close such a connection rather than reuse it, or use
    /// [`EventStore::append`], whose connection is closed when it is dropped midway.
    fn append_in(
        &self,
        conn: &mut Self::Connection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<AppendResult>> + Send;

    /// [`EventStore::append_in`] in a transaction of the store's own, committed on success.
    ///
    /// An error means nothing was written, with one exception: [`crate::Error::Database`] from
    /// a COMMIT that was sent and then failed in transit (a lost connection), whose outcome
    /// the client cannot know. An append time limit ([`crate::Timeouts::append`]) covers
    /// everything before COMMIT, never the COMMIT: [`crate::Error::Timeout`] always means
    /// nothing was written.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future (a `select!`, a task abort, a timeout of yours) leaves the
    /// outcome unknown: an append already sent to the database may still commit (on
    /// PostgreSQL it often does). To find out, append the same events again (same event ids):
    /// idempotency returns the original positions with `replayed: true` if they were stored,
    /// and appends them otherwise.
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<AppendResult>> + Send;

    /// Reads the events of `stream` within `range`, in version order.
    fn read_stream(
        &self,
        stream: &StreamId,
        range: VersionRange,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// [`EventStore::read_stream`] inside the caller's transaction.
    fn read_stream_in(
        &self,
        conn: &mut Self::Connection,
        stream: &StreamId,
        range: VersionRange,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// The stream's current version (0 when it does not exist).
    fn stream_version(&self, stream: &StreamId) -> impl Future<Output = Result<Version>> + Send;

    /// Reads up to `limit` events of the global log with position `>= from`, in position order.
    ///
    /// Gap-free: only events below the [`EventStore::head`] are returned, so a reader that
    /// continues after the last position it saw never misses an event committed later.
    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// [`EventStore::read_all`] on the caller's connection, inside its transaction if it has
    /// one: a catch-up reader keeps one connection, and a projection can read the events it
    /// applies in the transaction that stores its checkpoint. A transaction reads its own
    /// appends too (its own in-flight writes never hold it back). On PostgreSQL the transaction
    /// must be READ COMMITTED, the default ([`crate::Error::Unsupported`] otherwise: a
    /// REPEATABLE READ snapshot may miss an event below the head, which a reader would then skip
    /// for good).
    fn read_all_in(
        &self,
        conn: &mut Self::Connection,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// The gap-free head: every event at or below it is committed and visible, and no event at or
    /// below it can appear later. 0 for an empty store.
    fn head(&self) -> impl Future<Output = Result<Position>> + Send;

    /// The global log from `from` (inclusive) as a stream, read in pages of `page_size`; the
    /// stream ends when it has caught up with the head.
    fn stream_all(&self, from: Position, page_size: usize) -> EventStream<'_> {
        paged_stream(from, page_size, move |next, n| self.read_all(next, n))
    }
}

/// Turns a page reader (`fetch(from, page_size)`) into a stream that follows the last position
/// it yielded, yields a read error and stops, and ends once a page comes back short.
pub(crate) fn paged_stream<'a, F, Fut>(
    from: Position,
    page_size: usize,
    fetch: F,
) -> EventStream<'a>
where
    F: Fn(Position, usize) -> Fut + Send + Sync + 'a,
    Fut: Future<Output = Result<Vec<RecordedEvent>>> + Send + 'a,
{
    let page_size = page_size.max(1);
    let start = (from, std::vec::IntoIter::<RecordedEvent>::default(), false);
    let fetch = std::sync::Arc::new(fetch);
    Box::pin(futures_util::stream::try_unfold(start, move |(mut next, mut page, mut done)| {
        let fetch = fetch.clone();
        async move {
            loop {
                if let Some(event) = page.next() {
                    // Nothing can follow the largest position; stop there instead of
                    // overflowing.
                    match event.position.checked_add(1) {
                        Some(after) => next = after,
                        None => done = true,
                    }
                    return Ok(Some((event, (next, page, done))));
                }
                if done {
                    return Ok(None);
                }
                let events = fetch(next, page_size).await?;
                done = events.len() < page_size;
                page = events.into_iter();
            }
        }
    }))
}
