//! [`MySqlEventStore`]: construction, migration, and the [`EventStore`] and [`DcbStore`]
//! implementations.

use std::sync::{Arc, OnceLock};

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, LockKey, Query, ReadOptions, ReadResult, lock_plan,
};
use pupsourcing_core::group::{Entry, GroupQueue};
use pupsourcing_core::timeout::{within as limited, write_within};
use pupsourcing_core::{
    AppendResult, ConnectError, ConnectOptions, Error, EventStore, ExpectedVersion, NewEvent,
    Position, RecordedEvent, Result, SchemaStatus, StoreConfig, StreamId, Version, VersionRange,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Connection, MySql, MySqlConnection, MySqlPool, Transaction};
use tokio::sync::OnceCell;

use crate::append::group::{self, HeadsSql, MySqlGroupWriter, Request};
use crate::append::{Append, AppendSql, Chunks, Outcome, Target, budget};
use crate::checkpoint::CheckpointSql;
use crate::connection::OwnConnection;
use crate::coordination::CoordinationSql;
use crate::dcb::locks::Locks;
use crate::dcb::{self, DcbSql};
use crate::error::{NotCommitted, db, number};
use crate::migrate;
use crate::read::{self, ReadSql};

/// Opens every transaction of the store's (and [`EventStore::begin`]'s; a group's writer
/// connections, which nothing else uses, open theirs with `START TRANSACTION` only, see
/// `append/group.rs`): READ COMMITTED for
/// the session (so that the level is visible to the checks of `*_in` calls), on MariaDB the
/// server's idle limit for transactions back (a batch's lease may have changed it, see
/// `coordination`; MySQL skips the `/*M! */` comment), then the transaction. One round trip.
pub(crate) const BEGIN: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
     /*M!100300 SET SESSION idle_transaction_timeout = DEFAULT */; START TRANSACTION";

/// Run on every connection the store opens itself ([`MySqlEventStore::connect`]): strict SQL
/// mode for every table (nothing is ever truncated or coerced silently; the store validates
/// first anyway) and READ COMMITTED.
const SESSION_SETUP: &str = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'); \
     SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// The savepoint an append in a caller's transaction writes in. Released and set again: the
/// release fails (ER_SP_DOES_NOT_EXIST) when the session is in no transaction, as after a
/// deadlock, which InnoDB ends by rolling the whole transaction back while sqlx still counts it
/// open. The append's statements would then commit one by one, the counter's lock with the
/// first, and a reader could pass positions whose events are not written yet.
const SAVEPOINT: &str = "SAVEPOINT pupsourcing_append; RELEASE SAVEPOINT pupsourcing_append; \
     SAVEPOINT pupsourcing_append";
/// ER_SP_DOES_NOT_EXIST.
const NO_SAVEPOINT: u16 = 1305;
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT pupsourcing_append";

/// Conditional appends in a caller's transaction need READ COMMITTED.
const CONDITIONS_NEED_READ_COMMITTED: Error = Error::Unsupported {
    reason: "conditional appends need a READ COMMITTED transaction (EventStore::begin opens \
             one); under REPEATABLE READ (InnoDB's default) the condition check reads the \
             snapshot taken before it waited for the boundary locks, and could miss a \
             concurrent append",
};

/// Reads in a caller's transaction need READ COMMITTED.
const READS_NEED_READ_COMMITTED: Error = Error::Unsupported {
    reason: "reads in your transaction need READ COMMITTED (EventStore::begin opens one); under \
             REPEATABLE READ (InnoDB's default) the snapshot may miss an event below the head, \
             which a reader would then skip for good",
};

/// An event store on MySQL or MariaDB (InnoDB). Cheap to clone: clones share the pools.
///
/// Build it on a pool with [`MySqlEventStore::new`], or connect with
/// [`MySqlEventStore::connect`]; create the tables with [`MySqlEventStore::migrate`] (or with
/// the SQL from [`crate::migration_sql`]).
///
/// `config.schema` names the MySQL database holding the tables; the default, `public`, means
/// the database of the connection URL.
///
/// # Appends are serialised from allocation to commit
///
/// Every append takes its positions from one counter row and holds that row's lock until its
/// transaction ends: that is what makes reads of the global log gap-free (commits happen in
/// position order). The store's own appends take it last, after every lock wait and check, and
/// send their write and COMMIT in one round trip, so that round trip is all that runs one at a
/// time. An append in a
/// transaction of yours holds it until you commit or roll back: every other append of the store
/// waits meanwhile, so keep such transactions short.
///
/// # Connections
///
/// Besides its pool, a store opens up to two connections of its own (a side pool built from
/// the pool's connect options), where DCB lock rows and new streams' head rows are created in
/// autocommit statements while an append in a transaction of yours is open.
///
/// ```no_run
/// # async fn demo() -> pupsourcing_core::Result<()> {
/// use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId};
/// use pupsourcing_mysql::MySqlEventStore;
///
/// let store = MySqlEventStore::connect("mysql://root@localhost/app", StoreConfig::default()).await?;
/// store.migrate().await?;
/// let order = StreamId::new("Order", uuid::Uuid::now_v7());
/// let placed = NewEvent::json("OrderPlaced", &serde_json::json!({ "total": 42 }))?;
/// let written = store.append(&order, ExpectedVersion::NoStream, &[placed]).await?;
/// assert_eq!(written.versions, vec![1]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MySqlEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: MySqlPool,
    /// Two connections for creating DCB lock rows and stream head rows in autocommit
    /// statements while an append's transaction is open (see `dcb::locks` and
    /// `append/head_create.sql`), apart from the pool those transactions may have exhausted.
    side: MySqlPool,
    config: StoreConfig,
    append_sql: AppendSql,
    read_sql: ReadSql,
    dcb_sql: DcbSql,
    checkpoint_sql: CheckpointSql,
    coordination_sql: CoordinationSql,
    locks: Arc<Locks>,
    /// The server's `max_allowed_packet`, read once.
    max_packet: OnceCell<usize>,
    /// Concurrent appends of the store's own, written in groups (see `append/group.rs`); made
    /// when the packet size is known.
    group: OnceLock<Arc<GroupQueue<MySqlGroupWriter>>>,
}

impl MySqlEventStore {
    /// A store on an existing pool. Nothing is checked until the first call; run
    /// [`MySqlEventStore::migrate`] (or the generated migration) first.
    ///
    /// The store's transactions set their session to READ COMMITTED. Give the pool's
    /// connections `STRICT_ALL_TABLES` in their `sql_mode` as [`MySqlEventStore::connect`]
    /// does, if you want the server to refuse what the store's validation would miss.
    pub fn new(pool: MySqlPool, config: StoreConfig) -> Self {
        let options = pool.connect_options().as_ref().clone();
        let side = MySqlPoolOptions::new()
            .max_connections(2)
            .test_before_acquire(false)
            .after_connect(|conn, _| Box::pin(setup_session(conn)))
            .connect_lazy_with(options);
        Self {
            inner: Arc::new(Inner {
                append_sql: AppendSql::new(&config),
                read_sql: ReadSql::new(&config),
                dcb_sql: DcbSql::new(&config),
                checkpoint_sql: CheckpointSql::new(&config),
                coordination_sql: CoordinationSql::new(&config),
                locks: Arc::new(Locks::new(&config)),
                max_packet: OnceCell::new(),
                group: OnceLock::new(),
                config,
                pool,
                side,
            }),
        }
    }

    /// Connects a pool of up to 16 connections to `url` and builds a store on it.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self> {
        Self::connect_with(url, config, ConnectOptions::default()).await
    }

    /// Connects a pool with `options` (size, acquire timeout) to `url` and builds a store on
    /// it. One connection is opened at once, so that a wrong URL or an unreachable server fails
    /// here, with the driver's error. Sessions get strict SQL mode (`STRICT_ALL_TABLES`) and
    /// READ COMMITTED.
    pub async fn connect_with(
        url: &str,
        config: StoreConfig,
        options: ConnectOptions,
    ) -> Result<Self> {
        let connect: MySqlConnectOptions = url.parse().map_err(db)?;
        let first = MySqlConnection::connect_with(&connect).await.map_err(|source| {
            ConnectError::error("MySQL", connect.get_host(), connect.get_port(), source)
        })?;
        let _ = first.close().await;
        let pool = MySqlPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .after_connect(|conn, _| Box::pin(setup_session(conn)))
            .connect_lazy_with(connect);
        Ok(Self::new(pool, config))
    }

    /// Creates the database (unless it is the connection's) and the tables if they do not
    /// exist (idempotent; see [`crate::migration_sql`]). Fails with
    /// [`pupsourcing_core::ValidationError::TableNames`], creating nothing, when the configured
    /// names would collide.
    pub async fn migrate(&self) -> Result<()> {
        self.inner.config.validate()?;
        migrate::apply(&self.inner.pool, &self.inner.config).await
    }

    /// Which of the store's tables exist in its database (`config.schema`, or the
    /// connection's for the default `public`): all of them once [`MySqlEventStore::migrate`]
    /// (or the generated migration) has run. Besides the configured tables it lists those
    /// named after the events table (the position counter, the tag index, the lock rows) and
    /// the workers table (the worker lock rows, `<workers>_locks`), since a MySQL migration cut
    /// short can leave some of them missing (DDL is not transactional), and a schema of an
    /// older version lacks the worker lock rows. Names too long to derive from fail with
    /// [`pupsourcing_core::ValidationError::TableNames`].
    /// Indexes are not checked. (Older stores also have a write procedure, no longer used.)
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        migrate::status(&self.inner.pool, &self.inner.config).await
    }

    /// The schema SQL for `config`; see [`crate::migration_sql`].
    pub fn migration_sql(config: &StoreConfig) -> String {
        migrate::migration_sql(config)
    }

    /// The connection pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.inner.pool
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Closes the pools, waiting for connections in use to be returned. Every later call fails
    /// with [`Error::PoolClosed`].
    pub async fn close(&self) {
        self.inner.pool.close().await;
        self.inner.side.close().await;
        if let Some(group) = self.inner.group.get() {
            group.writer().close().await;
        }
    }

    /// A store of the same database and configuration on a pool of one connection of its
    /// own, opened lazily with this pool's connect options and the store's session setup
    /// (`CoordinationStore::dedicated`).
    pub(crate) fn with_own_connection(&self) -> Self {
        let options = self.inner.pool.connect_options().as_ref().clone();
        let pool = MySqlPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_connect(|conn, _| Box::pin(setup_session(conn)))
            .connect_lazy_with(options);
        Self::new(pool, self.inner.config.clone())
    }

    pub(crate) fn read_sql(&self) -> &ReadSql {
        &self.inner.read_sql
    }

    pub(crate) fn checkpoint_sql(&self) -> &CheckpointSql {
        &self.inner.checkpoint_sql
    }

    pub(crate) fn coordination_sql(&self) -> &CoordinationSql {
        &self.inner.coordination_sql
    }

    /// The lock plan of an append (see `dcb::locks`).
    fn plan(&self, target: Target<'_>, events: &[NewEvent]) -> Vec<LockKey> {
        let max_keys = self.inner.config.limits.max_lock_keys;
        lock_plan(0, events, target.condition(), max_keys)
    }

    /// Splits a validated append's rows to fit the server's packet size (see
    /// [`Self::max_packet`]).
    async fn chunks(
        &self,
        conn: &mut MySqlConnection,
        target: Target<'_>,
        events: &[NewEvent],
    ) -> Result<Chunks> {
        Chunks::plan(events, target.stream(), self.max_packet(Some(conn)).await?)
    }

    /// The server's `max_allowed_packet`, read once: on `conn` when given (never from the pool,
    /// which transactions waiting for this one may hold), else on a pooled connection.
    async fn max_packet(&self, conn: Option<&mut MySqlConnection>) -> Result<usize> {
        let inner = &self.inner;
        let max = inner.max_packet.get_or_try_init(|| async {
            const QUERY: &str = "SELECT @@max_allowed_packet";
            let max: u64 = match conn {
                Some(conn) => sqlx::query_scalar(QUERY).fetch_one(conn).await,
                None => sqlx::query_scalar(QUERY).fetch_one(&inner.pool).await,
            }
            .map_err(db)?;
            Ok::<_, Error>(usize::try_from(max).unwrap_or(usize::MAX))
        });
        Ok(*max.await?)
    }

    /// The store's group-commit queue (see `append/group.rs`).
    fn group(&self, max_packet: usize) -> &Arc<GroupQueue<MySqlGroupWriter>> {
        let inner = &self.inner;
        inner.group.get_or_init(|| {
            let writer = MySqlGroupWriter::new(
                &inner.pool,
                inner.side.clone(),
                inner.append_sql.clone(),
                inner.dcb_sql.clone(),
                HeadsSql::new(&inner.config),
                inner.locks.clone(),
                budget(max_packet),
            );
            let limits = group::limits(budget(max_packet), inner.config.limits.max_lock_keys);
            Arc::new(GroupQueue::new(writer, limits))
        })
    }

    /// An append in a transaction of the store's own. Without a time limit or a record, it
    /// goes through group commit (see `append/group.rs`): alone when no other append is in
    /// flight, else queued and merged with concurrent ones.
    async fn append_own(
        &self,
        target: Target<'_>,
        events: &[NewEvent],
        record: Option<&CommandRecord>,
    ) -> Result<AppendResult> {
        let inner = &self.inner;
        if record.is_some() || inner.config.timeouts.append.is_some() {
            return self.append_alone(target, events, record, None).await;
        }
        target.validate(events, &inner.config.limits)?;
        let max_packet = self.max_packet(None).await?;
        let mut chunks = Chunks::plan(events, target.stream(), max_packet)?;
        if chunks.0.len() != 1 {
            return self.append_alone(target, events, None, Some(chunks)).await;
        }
        let queue = self.group(max_packet);
        let entry = queue.enter(|| {
            let chunk = chunks.0.pop().unwrap_or_default();
            Request::new(target, chunk, self.plan(target, events))
        });
        match entry {
            Entry::Direct(_slot) => self.append_alone(target, events, None, Some(chunks)).await,
            Entry::Queued(reply) => match reply.await {
                Ok(Some(result)) => Ok(result),
                // Not appended in its group, or the writer task is gone (the runtime is
                // shutting down): alone, it appends or tells why not (a replay included).
                Ok(None) | Err(_) => self.append_alone(target, events, None, None).await,
            },
        }
    }

    /// An append in a transaction of the store's own, on a pooled connection, committed
    /// unless the append was a replay. The time limit covers everything up to COMMIT.
    ///
    /// With a `record` (the command executor's), the command is recorded in the same
    /// transaction when the events were appended (not after a replay), and no time limit
    /// applies (see [`DcbStore::append_if_and_record`]). `chunks` are the batch's rows when
    /// already made.
    async fn append_alone(
        &self,
        target: Target<'_>,
        events: &[NewEvent],
        record: Option<&CommandRecord>,
        chunks: Option<Chunks>,
    ) -> Result<AppendResult> {
        let inner = &self.inner;
        let limit = if record.is_some() { None } else { inner.config.timeouts.append };
        let started = std::time::Instant::now();
        if chunks.is_none() {
            target.validate(events, &inner.config.limits)?;
        }
        if let Some(record) = record {
            record.validate(&inner.config.limits)?;
        }
        let plan = self.plan(target, events);
        let mut conn = limited(limit, OwnConnection::acquire(&inner.pool)).await?;
        let work = async {
            let chunks = match chunks {
                Some(chunks) => chunks,
                None => self.chunks(&mut conn, target, events).await?,
            };
            // A COMMIT in the write's round trip could not be cut short by the time limit, and
            // a record must go before it: then the COMMIT follows on its own.
            let commit = record.is_none() && limit.is_none();
            let append = self.append_step(target, events, &chunks, commit);
            let (open, result) = self.run_own(&mut conn, &append, &plan).await?;
            if let (true, Some(record)) = (open, record) {
                let record =
                    CommandRecord { positions: result.positions.clone(), ..record.clone() };
                if let Err(err) = dcb::record_command(&mut conn, &inner.dcb_sql, &record).await {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    return Err(err);
                }
            }
            Ok((open.then_some(&mut *conn), result))
        };
        let rest = limit.map(|l| l.saturating_sub(started.elapsed()));
        let result = write_within(rest, work, commit_open).await;
        // Timed out: the work was cut short, maybe inside BEGIN, so the connection is closed
        // (which rolls back on the server) rather than returned (see OwnConnection).
        match result {
            Err(Error::Timeout) => result,
            _ => conn.finish(result),
        }
    }

    /// Runs `append` in a transaction of its own on `conn`, which is in none: the lock rows
    /// first (autocommit), then BEGIN and the append ([`Append::run_own`]). Returns whether the
    /// transaction is left open to commit: not when the append committed in its write's round
    /// trip ([`Append::commit`]), nor after a replay, which is rolled back. BEGIN, COMMIT and
    /// ROLLBACK are statements here, not a `sqlx::Transaction`, so that an append that lost the
    /// race to create its stream's head row can run again in a new transaction.
    async fn run_own(
        &self,
        conn: &mut MySqlConnection,
        append: &Append<'_>,
        plan: &[LockKey],
    ) -> Result<(bool, AppendResult)> {
        let inner = &self.inner;
        inner.locks.ensure_rows(Some(&mut *conn), &inner.side, plan).await?;
        for _ in 0..HEAD_RACES {
            let outcome = append.run_own(conn, &inner.locks, plan).await;
            let replayed = match outcome {
                Ok(Outcome::Appended(result)) => return Ok((!append.commit, result)),
                Ok(Outcome::Replayed(result)) => Some(result),
                Ok(Outcome::Raced) => None,
                Err(err) => {
                    // Harmless after a failed COMMIT too: the outcome is unknown either way.
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    return Err(err);
                }
            };
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.map_err(db)?;
            if let Some(result) = replayed {
                return Ok((false, result));
            }
        }
        Err(Error::TransactionConflict(Box::new(HeadRaced)))
    }

    /// An append in the caller's transaction on `conn`, in a savepoint (rolled back on any
    /// rejection); on a connection outside any transaction, in a transaction of its own.
    async fn append_caller(
        &self,
        conn: &mut MySqlConnection,
        target: Target<'_>,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        let inner = &self.inner;
        target.validate(events, &inner.config.limits)?;
        let chunks = self.chunks(conn, target, events).await?;
        let plan = self.plan(target, events);
        if !conn.is_in_transaction() {
            let append = self.append_step(target, events, &chunks, true);
            let (open, result) = self.run_own(conn, &append, &plan).await?;
            commit_open(open.then_some(conn)).await?;
            return Ok(result);
        }
        if target.condition().is_some() && !read::is_read_committed(conn).await? {
            return Err(CONDITIONS_NEED_READ_COMMITTED);
        }
        inner.locks.ensure_rows(None, &inner.side, &plan).await?;
        match sqlx::raw_sql(SAVEPOINT).execute(&mut *conn).await {
            Err(err) if number(&err) == Some(NO_SAVEPOINT) => {
                return Err(Error::database(NotCommitted));
            }
            other => other.map_err(db)?,
        };
        let append = self.append_step(target, events, &chunks, false);
        let outcome = append.run_in(conn, &inner.locks, &plan).await;
        match outcome {
            Ok(Outcome::Appended(result)) => Ok(result),
            Ok(Outcome::Replayed(result)) => {
                sqlx::raw_sql(ROLLBACK_TO_SAVEPOINT).execute(&mut *conn).await.map_err(db)?;
                Ok(result)
            }
            Ok(Outcome::Raced) => {
                let _ = sqlx::raw_sql(ROLLBACK_TO_SAVEPOINT).execute(&mut *conn).await;
                Err(Error::TransactionConflict(Box::new(HeadRaced)))
            }
            Err(err) => {
                // Fails only when the server ended the transaction (a deadlock rolls it all
                // back): the error says so already.
                let _ = sqlx::raw_sql(ROLLBACK_TO_SAVEPOINT).execute(&mut *conn).await;
                Err(err)
            }
        }
    }

    fn append_step<'a>(
        &'a self,
        target: Target<'a>,
        events: &'a [NewEvent],
        chunks: &'a Chunks,
        commit: bool,
    ) -> Append<'a> {
        let inner = &self.inner;
        Append {
            sql: &inner.append_sql,
            dcb: &inner.dcb_sql,
            config: &inner.config,
            target,
            events,
            chunks,
            side: &inner.side,
            commit,
            // Known once the chunks were planned (they needed it).
            packet: inner.max_packet.get().map_or(0, |&max| budget(max)),
        }
    }

    /// Refuses reads in a caller's transaction above READ COMMITTED.
    async fn check_read_isolation(conn: &mut MySqlConnection) -> Result<()> {
        if conn.is_in_transaction() && !read::is_read_committed(conn).await? {
            return Err(READS_NEED_READ_COMMITTED);
        }
        Ok(())
    }
}

/// Commits the transaction an append of the store's own left open on `conn`, if any.
async fn commit_open(conn: Option<&mut MySqlConnection>) -> Result<()> {
    match conn {
        Some(conn) => sqlx::raw_sql("COMMIT").execute(conn).await.map(drop).map_err(db),
        None => Ok(()),
    }
}

/// How many times an append of the store's own runs when other appends keep creating its
/// stream's head row first (once is enough: the row then exists).
const HEAD_RACES: usize = 3;

/// An append lost the race to create its stream's head row more often than [`HEAD_RACES`].
#[derive(Debug, thiserror::Error)]
#[error("concurrent appends created the stream's head row first; retry the append")]
struct HeadRaced;

pub(crate) async fn setup_session(
    conn: &mut MySqlConnection,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql(SESSION_SETUP).execute(conn).await?;
    Ok(())
}

impl EventStore for MySqlEventStore {
    type Connection = MySqlConnection;
    type Transaction = Transaction<'static, MySql>;

    /// Opens a READ COMMITTED transaction on a pooled connection (setting the session's level).
    /// Safe to cancel: BEGIN runs in a task of its own; when the caller stops waiting, that
    /// task drops the finished transaction, which rolls it back.
    async fn begin(&self) -> Result<Self::Transaction> {
        let pool = self.inner.pool.clone();
        match tokio::spawn(async move { pool.begin_with(BEGIN).await }).await {
            Ok(tx) => tx.map_err(db),
            Err(join) => Err(Error::database(join)),
        }
    }

    /// Commits, or fails when the server has already ended the transaction: InnoDB rolls a
    /// whole transaction back on a deadlock, after which the session runs in autocommit mode
    /// and a COMMIT would succeed on nothing. A savepoint set and released first (one round
    /// trip) tells: the release fails outside a transaction.
    async fn commit(&self, mut tx: Self::Transaction) -> Result<()> {
        let check = "SAVEPOINT pupsourcing_commit; RELEASE SAVEPOINT pupsourcing_commit";
        if let Err(err) = sqlx::raw_sql(check).execute(&mut *tx).await {
            let _ = tx.rollback().await;
            return Err(match number(&err) {
                Some(NO_SAVEPOINT) => Error::database(NotCommitted),
                _ => db(err),
            });
        }
        tx.commit().await.map_err(db)
    }

    async fn rollback(&self, tx: Self::Transaction) -> Result<()> {
        tx.rollback().await.map_err(db)
    }

    async fn append_in(
        &self,
        conn: &mut MySqlConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        self.append_caller(conn, Target::Stream(stream, expected), events).await
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        self.append_own(Target::Stream(stream, expected), events, None).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        range: VersionRange,
    ) -> Result<Vec<RecordedEvent>> {
        let inner = &self.inner;
        let read = read::read_stream(&inner.pool, &inner.read_sql, &inner.config, stream, range);
        limited(inner.config.timeouts.query, read).await
    }

    async fn read_stream_in(
        &self,
        conn: &mut MySqlConnection,
        stream: &StreamId,
        range: VersionRange,
    ) -> Result<Vec<RecordedEvent>> {
        let inner = &self.inner;
        read::read_stream(conn, &inner.read_sql, &inner.config, stream, range).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        let inner = &self.inner;
        let read = read::stream_version(&inner.pool, &inner.read_sql, stream);
        limited(inner.config.timeouts.query, read).await
    }

    /// The head, then the events up to it in a later statement (see `read`).
    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let inner = &self.inner;
        limited(inner.config.timeouts.query, async {
            let mut conn = inner.pool.acquire().await.map_err(db)?;
            read::read_all(&mut conn, &inner.read_sql, &inner.config, from, limit).await
        })
        .await
    }

    /// As [`EventStore::read_all`], on the caller's connection: a transaction that appended
    /// sees the counter it bumped, so it reads its own events (no other append can be in
    /// flight below them: it holds the counter). Refused above READ COMMITTED.
    async fn read_all_in(
        &self,
        conn: &mut MySqlConnection,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        Self::check_read_isolation(conn).await?;
        let inner = &self.inner;
        read::read_all(conn, &inner.read_sql, &inner.config, from, limit).await
    }

    async fn head(&self) -> Result<Position> {
        let inner = &self.inner;
        limited(inner.config.timeouts.query, read::head(&inner.pool, &inner.read_sql)).await
    }
}

impl DcbStore for MySqlEventStore {
    /// Appends in the caller's transaction, in a savepoint; a conditional append needs the
    /// transaction at READ COMMITTED ([`EventStore::begin`] opens one).
    async fn append_if_in(
        &self,
        conn: &mut MySqlConnection,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> Result<AppendResult> {
        self.append_caller(conn, Target::Dcb(condition), events).await
    }

    async fn append_if(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> Result<AppendResult> {
        self.append_own(Target::Dcb(condition), events, None).await
    }

    async fn read_in(
        &self,
        conn: &mut MySqlConnection,
        query: &Query,
        options: ReadOptions,
    ) -> Result<ReadResult> {
        let inner = &self.inner;
        query.validate(&inner.config.limits)?;
        Self::check_read_isolation(conn).await?;
        dcb::read(conn, &inner.dcb_sql, &inner.read_sql, &inner.config, query, options).await
    }

    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult> {
        let inner = &self.inner;
        query.validate(&inner.config.limits)?;
        limited(inner.config.timeouts.query, async {
            let mut conn = inner.pool.acquire().await.map_err(db)?;
            dcb::read(&mut conn, &inner.dcb_sql, &inner.read_sql, &inner.config, query, options)
                .await
        })
        .await
    }

    /// The events and the record in one transaction of the store's own: the record (with the
    /// events' positions) is inserted only when the events were appended, before the COMMIT;
    /// a replay records nothing. With no events, only the record, in autocommit mode.
    async fn append_if_and_record(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
        command: &CommandRecord,
    ) -> Result<AppendResult> {
        if events.is_empty() {
            command.validate(&self.inner.config.limits)?;
            let mut conn = self.inner.pool.acquire().await.map_err(db)?;
            dcb::record_command(&mut conn, &self.inner.dcb_sql, command).await?;
            return Ok(AppendResult {
                positions: Vec::new(),
                versions: Vec::new(),
                replayed: false,
            });
        }
        self.append_own(Target::Dcb(condition), events, Some(command)).await
    }

    async fn record_command_in(
        &self,
        conn: &mut MySqlConnection,
        command: &CommandRecord,
    ) -> Result<()> {
        command.validate(&self.inner.config.limits)?;
        dcb::record_command(conn, &self.inner.dcb_sql, command).await
    }
}
