//! [`PgEventStore`]: the PostgreSQL event store.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, Query, ReadOptions, ReadResult, global_key,
};
use pupsourcing_core::timeout::{within as limited, write_within};
use pupsourcing_core::{
    AppendResult, ConnectError, ConnectOptions, Error, EventStore, ExpectedVersion, NewEvent,
    Position, RecordedEvent, Result, SchemaStatus, StoreConfig, StreamId, Version, VersionRange,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, Row, Transaction};

use crate::append::group::GroupCommit;
use crate::append::{Route, Target};
use crate::connection::{KeptConnections, MAX_KEPT, OwnConnection};
use crate::error::{EndedByCaller, NotCommitted, db_error};
use crate::notify::Notifier;
use crate::sql::Statements;
use crate::{append, dcb, migrate, read};

/// An event store on PostgreSQL. Cheap to clone: clones share the pool.
///
/// Appends of a single event outside a transaction of yours ([`EventStore::append`],
/// [`DcbStore::append_if`], without an append time limit) are merged with concurrent ones into
/// one statement and one transaction (group commit), each still checked and atomic on its own.
/// The merging writers use up to two connections of their own, and the store keeps up to four
/// for its DCB reads ([`DcbStore::read`]), its appends that run alone and its wake-up
/// notifications (so that they cost no pool round trips), all opened from the pool's connect
/// options on first need, in addition to the pool's; [`PgEventStore::close`] closes them too.
///
/// # The cached head
///
/// A store remembers the highest gap-free head it has seen, so that catch-up reads
/// ([`EventStore::read_all`], [`EventStore::stream_all`]) below it skip the head query, and a
/// DCB read ([`DcbStore::read`]) that finds no matching event above it returns it as its head
/// without computing the query's head. That relies on heads only growing: events are never
/// deleted and positions never reused. Deleting events (`TRUNCATE`, `DELETE`) or restoring the
/// database from an older backup while a store is running breaks that assumption: its reads
/// may then return events above the true head (positions the log has not reached yet), and
/// DCB reads a head that later appends could land below. Build new stores (restart the
/// process) after such maintenance.
///
/// ```no_run
/// # async fn demo() -> pupsourcing_core::Result<()> {
/// use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId};
/// use pupsourcing_postgres::PgEventStore;
///
/// let store = PgEventStore::connect("postgres://localhost/test", StoreConfig::default()).await?;
/// store.migrate().await?;
/// let order = StreamId::new("Order", uuid::Uuid::now_v7());
/// let placed = NewEvent::json("OrderPlaced", &serde_json::json!({ "total": 42 }))?;
/// let written = store.append(&order, ExpectedVersion::NoStream, &[placed]).await?;
/// assert_eq!(written.versions, vec![1]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pool: PgPool,
    config: StoreConfig,
    sql: Arc<Statements>,
    /// Queue of concurrent single-event appends of the store's own (see append/group.rs).
    group: Arc<GroupCommit>,
    /// Connections kept for the store's one-statement calls (see connection.rs), shared with
    /// `group` for the appends that run alone.
    kept: Arc<KeptConnections>,
    /// Highest gap-free head seen so far. Heads only grow, so a cached one stays safe and lets
    /// catch-up reads skip the head query until they reach it. Wrong after a TRUNCATE or a
    /// restore of an older backup (see the type's docs): the store assumes neither happens.
    known_head: AtomicI64,
    /// Sends the wake-up notification after commits (see notify.rs).
    notifier: Notifier,
}

impl PgEventStore {
    /// A store on an existing pool. Nothing is checked until the first call; run
    /// [`PgEventStore::migrate`] (or the generated migration) first.
    pub fn new(pool: PgPool, config: StoreConfig) -> Self {
        let sql = Arc::new(Statements::new(&config));
        let kept = Arc::new(KeptConnections::new(&pool, MAX_KEPT));
        let group = GroupCommit::new(pool.clone(), kept.clone(), sql.clone(), config.limits);
        let group = Arc::new(group);
        let known_head = AtomicI64::new(0);
        let notifier = Notifier::new(&config);
        let inner = Inner { pool, config, sql, group, kept, known_head, notifier };
        Self { inner: Arc::new(inner) }
    }

    /// Connects a pool of up to 16 connections to `url` and builds a store on it:
    /// [`PgEventStore::connect_with`] with the default [`ConnectOptions`].
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self> {
        Self::connect_with(url, config, ConnectOptions::default()).await
    }

    /// Connects a pool with `options` (size, acquire timeout) to `url` and builds a store on
    /// it. Group commit and DCB reads open up to six more connections on first need (see the
    /// type's docs).
    ///
    /// One connection is opened at once, so that a wrong URL or an unreachable server fails
    /// here, immediately, with [`Error::Database`] naming the host and port and carrying the
    /// driver's error (and its I/O error) as source, rather than after the acquire timeout.
    ///
    /// The pool does not ping connections before handing them out (sqlx's default would add a
    /// round trip to every call); a broken connection fails its call with a database error and
    /// is replaced. Build your own pool and use [`PgEventStore::new`] for other settings.
    pub async fn connect_with(
        url: &str,
        config: StoreConfig,
        options: ConnectOptions,
    ) -> Result<Self> {
        let connect: PgConnectOptions = url.parse().map_err(db_error)?;
        // sqlx's pool retries a refused connection until its acquire timeout and then reports
        // only the timeout: open the first connection directly to fail fast with the cause.
        let first = PgConnection::connect_with(&connect).await.map_err(|source| {
            ConnectError::error("PostgreSQL", connect.get_host(), connect.get_port(), source)
        })?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(connect);
        Ok(Self::new(pool, config))
    }

    /// Closes the store: sends the wake-up notification of its last appends if still due,
    /// then closes its pool, group commit's writer connections and the kept connections,
    /// waiting for connections in use to be returned. Every later call fails with
    /// [`Error::PoolClosed`].
    /// Clones share the pool, so this closes them too.
    pub async fn close(&self) {
        // The wake-up of the last commits, if its task has not sent it yet.
        self.flush_notification().await;
        self.inner.pool.close().await;
        self.inner.group.close().await;
        self.inner.kept.close().await;
    }

    /// Creates the schema, tables and functions if they do not exist (idempotent). Fails with
    /// [`pupsourcing_core::ValidationError::TableNames`], creating nothing, when the configured
    /// names would collide (see [`pupsourcing_core::TableNames::validate`]).
    pub async fn migrate(&self) -> Result<()> {
        self.inner.config.validate()?;
        migrate::apply(&self.inner.pool, &self.inner.config).await.map_err(db_error)
    }

    /// Which of the configured tables exist in the configured schema: all of them once
    /// [`PgEventStore::migrate`] (or the generated migration) has run. Functions and indexes
    /// are not checked.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        migrate::status(&self.inner.pool, &self.inner.config).await.map_err(db_error)
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// An append in a transaction of the store's own. The append is one statement, so without a
    /// time limit it runs in autocommit mode: its own transaction, in one round trip. A single
    /// event goes through group commit (append/group.rs): alone by the direct path, or merged with
    /// concurrent ones. With a limit it runs in an explicit transaction, so that a timed-out
    /// append is rolled back rather than left to commit on the server.
    async fn append_own(&self, target: Target<'_>, events: &[NewEvent]) -> Result<AppendResult> {
        let inner = &self.inner;
        let limits = &inner.config.limits;
        let Some(limit) = inner.config.timeouts.append else {
            if let [event] = events {
                return inner.group.append(target, event).await;
            }
            // A batch (or an empty one, which validation rejects): the function, on a kept
            // connection when one is free. Validated first, so that a refused batch does not
            // take (or open) a connection for nothing.
            target.validate(events, limits)?;
            let context = (&*inner.sql, limits, target, events);
            return inner
                .kept
                .run(&inner.pool, &context, |&(sql, limits, target, events), conn| {
                    Box::pin(append::append(conn, sql, limits, target, events, Route::Own))
                })
                .await;
        };
        // The limit runs from here: acquiring a connection counts.
        let started = std::time::Instant::now();
        let mut conn = limited(Some(limit), OwnConnection::acquire(&inner.pool)).await?;
        let work = async {
            let begin = conn.begin_with(append::BEGIN_READ_COMMITTED);
            let mut tx = begin.await.map_err(db_error)?;
            let result =
                append::append(&mut tx, &inner.sql, limits, target, events, Route::Function)
                    .await?;
            Ok((tx, result))
        };
        // The limit ends where COMMIT starts (see pupsourcing_core::timeout). The store's own
        // transaction ran nothing else, so it needs no check before its COMMIT.
        let rest = limit.saturating_sub(started.elapsed());
        let result = write_within(Some(rest), work, commit_own).await;
        // Timed out: the work was cut short, maybe inside its BEGIN, so the connection is
        // closed rather than returned (see OwnConnection); as when the caller cancels this call.
        match result {
            Err(Error::Timeout) => result,
            _ => conn.finish(result),
        }
    }

    /// A DCB read of `query` on `conn`, validated by the caller.
    async fn read_on(
        &self,
        conn: &mut PgConnection,
        query: &Query,
        options: ReadOptions,
        session: dcb::Session,
    ) -> Result<ReadResult> {
        let max_keys = self.inner.config.limits.max_lock_keys;
        // The cached head lets a read that finds nothing above it skip the query's head (see
        // dcb::Below::read). Loaded before the read's statement starts, so the head
        // statement that produced it ended before that statement's snapshot. Never in a
        // caller's transaction, whose snapshot may be older.
        let known = (session == dcb::Session::Autocommit).then(|| self.known_head());
        let (events, head) =
            dcb::read(conn, &self.inner.sql, query, options, session, max_keys, known).await?;
        // A head read in a caller's transaction may cover that transaction's own uncommitted
        // events (see `{events}_safe_head`): gap-free for it alone, so it is never shared. The
        // head of a narrower query is gap-free for that query alone.
        if session == dcb::Session::Autocommit && query.is_all() {
            self.inner.known_head.fetch_max(head, Ordering::AcqRel);
        }
        Ok(ReadResult { events, head })
    }

    /// The store's statements.
    pub(crate) fn statements(&self) -> &Statements {
        &self.inner.sql
    }

    pub(crate) fn notifier(&self) -> &Notifier {
        &self.inner.notifier
    }

    /// The connections the store keeps for its one-statement calls (see connection.rs).
    pub(crate) fn kept(&self) -> &KeptConnections {
        &self.inner.kept
    }

    pub(crate) fn inner_arc(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// The highest gap-free head this store has seen (see "The cached head").
    pub(crate) fn known_head(&self) -> Position {
        self.inner.known_head.load(Ordering::Acquire)
    }

    /// A fresh gap-free head (one statement), remembered if it is the highest seen.
    pub(crate) async fn refresh_head(&self) -> Result<Position> {
        let (head, _) =
            read::safe_head(&self.inner.pool, &self.inner.sql).await.map_err(db_error)?;
        Ok(self.inner.known_head.fetch_max(head, Ordering::AcqRel).max(head))
    }
}

/// Commits a transaction of the store's own (which ran nothing but the store's statements).
async fn commit_own(tx: Transaction<'_, Postgres>) -> Result<()> {
    tx.commit().await.map_err(db_error)
}

impl EventStore for PgEventStore {
    type Connection = PgConnection;
    type Transaction = Transaction<'static, Postgres>;

    /// Begins a READ COMMITTED transaction, whatever the server's default: conditional
    /// appends and DCB reads need it (a transaction you begin yourself at a higher level is
    /// refused for those).
    /// Opens a READ COMMITTED transaction on a pooled connection. Safe to cancel: sqlx's
    /// BEGIN is not (a future dropped after BEGIN was sent returns the connection to the pool
    /// inside the open transaction, where later autocommit appends would never commit), so it
    /// runs in a task of its own; when the caller stops waiting, that task drops the finished
    /// transaction, which rolls it back.
    async fn begin(&self) -> Result<Self::Transaction> {
        let pool = self.inner.pool.clone();
        let begin =
            tokio::spawn(async move { pool.begin_with(append::BEGIN_READ_COMMITTED).await });
        match begin.await {
            Ok(tx) => tx.map_err(db_error),
            // The runtime is shutting down.
            Err(join) => Err(Error::database(join)),
        }
    }

    /// Commits, or fails when the server has already ended the transaction. PostgreSQL answers
    /// COMMIT of a transaction aborted by a failed statement with ROLLBACK, not an error, and
    /// sqlx reports neither that tag nor the session's transaction status. So a SAVEPOINT goes
    /// first: it fails in an aborted transaction and outside any transaction, and costs one
    /// short round trip (no snapshot, no plan).
    async fn commit(&self, mut tx: Self::Transaction) -> Result<()> {
        // One round trip: the SAVEPOINT check, and whether an append of the store's ran in
        // the transaction (set by the append function; see notify.rs).
        let checked = sqlx::raw_sql(
            "SAVEPOINT pupsourcing_commit; SELECT current_setting('pupsourcing.appended', true)",
        )
        .fetch_all(&mut *tx)
        .await;
        let appended = match checked {
            Ok(rows) => rows.first().and_then(|row| row.try_get::<Option<String>, _>(0).ok()),
            Err(source) => {
                // 25P01: no transaction is open, so a statement of the caller's (COMMIT,
                // ROLLBACK) ended it and decided what is stored; anything else: it was
                // aborted, nothing is.
                let ended =
                    source.as_database_error().and_then(|e| e.code()).as_deref() == Some("25P01");
                // Ends the aborted transaction now rather than on the connection's next use.
                let _ = tx.rollback().await;
                return Err(match ended {
                    true => Error::database(EndedByCaller { source }),
                    false => Error::database(NotCommitted { source }),
                });
            }
        };
        tx.commit().await.map_err(db_error)?;
        if appended.flatten().as_deref() == Some("on") {
            self.committed();
        }
        Ok(())
    }

    async fn rollback(&self, tx: Self::Transaction) -> Result<()> {
        tx.rollback().await.map_err(db_error)
    }

    async fn append_in(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        let inner = &self.inner;
        let target = Target::Stream(stream, expected);
        append::append(conn, &inner.sql, &inner.config.limits, target, events, Route::Function)
            .await
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        let appended = self.append_own(Target::Stream(stream, expected), events).await?;
        self.committed();
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        range: VersionRange,
    ) -> Result<Vec<RecordedEvent>> {
        let read = read::read_stream(&self.inner.pool, &self.inner.sql, stream, range);
        limited(self.inner.config.timeouts.query, async { read.await.map_err(db_error) }).await
    }

    async fn read_stream_in(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        range: VersionRange,
    ) -> Result<Vec<RecordedEvent>> {
        read::read_stream(conn, &self.inner.sql, stream, range).await.map_err(db_error)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        let read = read::stream_version(&self.inner.pool, &self.inner.sql, stream);
        limited(self.inner.config.timeouts.query, async { read.await.map_err(db_error) }).await
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        limited(self.inner.config.timeouts.query, self.read_all_unlimited(from, limit)).await
    }

    /// The head of the whole log as this session sees it (its own open transaction's markers
    /// skipped), then the events up to it in a later statement; never cached.
    async fn read_all_in(
        &self,
        conn: &mut PgConnection,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let sql = &self.inner.sql;
        let global = global_key(sql.lock_namespace);
        let (head, read_committed) =
            read::query_head(&mut *conn, sql, None, global, true).await.map_err(db_error)?;
        if !read_committed {
            return Err(dcb::READS_NEED_READ_COMMITTED);
        }
        let from = from.max(1);
        if limit == 0 || head < from {
            return Ok(Vec::new());
        }
        read::read_until(&mut *conn, sql, from, head, limit).await.map_err(db_error)
    }

    async fn head(&self) -> Result<Position> {
        limited(self.inner.config.timeouts.query, self.refresh_head()).await
    }
}

impl PgEventStore {
    async fn read_all_unlimited(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let (pool, sql) = (&self.inner.pool, &self.inner.sql);
        let from = from.max(1);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Serve what the cached head allows; ask for a newer head only when the page is short.
        let known = self.known_head();
        let mut events = Vec::new();
        if known >= from {
            events = read::read_until(pool, sql, from, known, limit).await.map_err(db_error)?;
            if events.len() == limit {
                return Ok(events);
            }
        }
        let head = self.refresh_head().await?;
        let next = from.max(known + 1);
        if head >= next {
            let rest = limit - events.len();
            events.extend(read::read_until(pool, sql, next, head, rest).await.map_err(db_error)?);
        }
        Ok(events)
    }
}

impl DcbStore for PgEventStore {
    async fn append_if_in(
        &self,
        conn: &mut PgConnection,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> Result<AppendResult> {
        let inner = &self.inner;
        let target = Target::Dcb(condition);
        append::append(conn, &inner.sql, &inner.config.limits, target, events, Route::Function)
            .await
    }

    async fn read_in(
        &self,
        conn: &mut PgConnection,
        query: &Query,
        options: ReadOptions,
    ) -> Result<ReadResult> {
        query.validate(&self.inner.config.limits)?;
        self.read_on(conn, query, options, dcb::Session::Callers).await
    }

    async fn append_if(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> Result<AppendResult> {
        let appended = self.append_own(Target::Dcb(condition), events).await?;
        self.committed();
        Ok(appended)
    }

    /// On a connection the store keeps when one is free (no pool round trips; see
    /// connection.rs), else on one of the pool.
    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult> {
        // Before taking a connection: a refused query would close a kept one for nothing.
        query.validate(&self.inner.config.limits)?;
        let context = (self, query, options);
        let read =
            self.inner.kept.run(&self.inner.pool, &context, |&(store, query, options), conn| {
                Box::pin(store.read_on(conn, query, options, dcb::Session::Autocommit))
            });
        limited(self.inner.config.timeouts.query, read).await
    }

    /// A single event goes through group commit with its record (append/group.rs): alone by the
    /// direct statement (`append/direct_recorded.sql`), or in a group statement that inserts
    /// the records of exactly the requests it appends. A batch is one statement in autocommit
    /// mode (`append/recorded.sql`); with no events, the record alone.
    async fn append_if_and_record(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
        command: &CommandRecord,
    ) -> Result<AppendResult> {
        let inner = &self.inner;
        if let [event] = events {
            let appended = inner.group.append_recorded(condition, event, command).await?;
            self.committed();
            return Ok(appended);
        }
        if events.is_empty() {
            let mut conn = OwnConnection::acquire(&inner.pool).await?;
            let recorded = self.record_command_in(&mut conn, command).await;
            let nothing =
                AppendResult { positions: Vec::new(), versions: Vec::new(), replayed: false };
            return conn.finish(recorded.map(|()| nothing));
        }
        // A batch: one statement, on a kept connection when one is free (validated first, as
        // in `append_own`).
        command.validate(&inner.config.limits)?;
        Target::Dcb(condition).validate(events, &inner.config.limits)?;
        let context = (&*inner.sql, &inner.config.limits, condition, events, command);
        let append = inner.kept.run(
            &inner.pool,
            &context,
            |&(sql, limits, condition, events, command), conn| {
                Box::pin(append::append_recorded(
                    conn,
                    sql,
                    limits,
                    events,
                    condition,
                    command,
                    Route::Own,
                ))
            },
        );
        let appended = append.await?;
        self.committed();
        Ok(appended)
    }

    async fn record_command_in(
        &self,
        conn: &mut PgConnection,
        command: &CommandRecord,
    ) -> Result<()> {
        command.validate(&self.inner.config.limits)?;
        sqlx::query(AssertSqlSafe(self.inner.sql.record_command.clone()))
            .bind(&command.command_type)
            .bind(&command.data)
            .bind(&command.metadata)
            .bind(&command.positions)
            .execute(conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
