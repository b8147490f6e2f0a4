//! [`SqliteEventStore`]: construction, migration and the [`EventStore`] implementation.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, Query, ReadOptions, ReadResult,
};
use pupsourcing_core::timeout::{within as limited, write_within};
use pupsourcing_core::{
    AppendResult, ConnectOptions, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent,
    Result, SchemaStatus, StoreConfig, StreamId, Version, VersionRange,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::append::{self, AppendSql, Atomicity, Target};
use crate::checkpoint::CheckpointSql;
use crate::coordination::CoordinationSql;
use crate::dcb::{self, DcbSql};
use crate::error::{NotCommitted, db};
use crate::migrate::{self, migration_sql};
use crate::read::{self, ReadSql};

/// How long a connection waits for another writer's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The statement that opens every write transaction of the store: it takes the write lock at
/// once, waiting up to the busy timeout for it. A deferred `BEGIN` would take it only at the
/// first write, and SQLite fails such an upgrade with `SQLITE_BUSY` at once, without waiting,
/// when another writer committed in between.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// An event store in one SQLite database: aggregate streams and the global log.
///
/// Build it from a pool with [`SqliteEventStore::new`], or open a database with
/// [`SqliteEventStore::connect`]; create the tables with [`SqliteEventStore::migrate`] (or with
/// the SQL from [`SqliteEventStore::migration_sql`]). Clones share the pools.
///
/// SQLite lets one writer at a time hold the write lock, so appends are serialised (readers are
/// not blocked, in WAL mode). Positions are allocated under that lock, which makes commits
/// happen in position order: every read of the global log is gap-free by construction, and
/// [`EventStore::head`] is simply the highest stored position.
///
/// # Two pools
///
/// A store reads through its pool and writes through a *write pool*. [`SqliteEventStore::connect`]
/// gives the write pool a single connection, so the process's writers wait for it in sqlx's
/// first-come, first-served queue and each is woken as soon as the previous one ends. Writers
/// that wait for SQLite's lock instead (other processes, or a store whose pools are one and the
/// same, as with [`SqliteEventStore::new`]) poll it with growing sleeps: under sustained
/// contention that is unfair, and one of them can starve until its busy timeout expires.
///
/// SQLite has no schemas: `config.schema` is ignored, and the tables are named by
/// `config.tables` in the database the pool opens.
///
/// ```
/// use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId};
/// use pupsourcing_sqlite::SqliteEventStore;
///
/// # async fn demo() -> pupsourcing_core::Result<()> {
/// let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await?;
/// store.migrate().await?;
/// let order = StreamId::new("Order", uuid::Uuid::now_v7());
/// let placed = NewEvent::json("OrderPlaced", &serde_json::json!({ "total": 42 }))?;
/// let result = store.append(&order, ExpectedVersion::NoStream, &[placed]).await?;
/// assert_eq!(result.versions, [1]);
/// assert_eq!(store.head().await?, result.last_position());
/// # Ok(())
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
///
/// # DCB
///
/// The store is also a [`DcbStore`] on the same log: tagged events, query reads, and appends
/// under a condition, checked in the append's write transaction.
///
/// ```
/// use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
/// use pupsourcing_core::{Error, NewEvent, StoreConfig};
/// use pupsourcing_sqlite::SqliteEventStore;
///
/// # async fn demo() -> pupsourcing_core::Result<()> {
/// let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await?;
/// store.migrate().await?;
/// let ada = Query::from_items([QueryItem::types(["UsernameClaimed"]).with_tags(["username:ada"])]);
/// let read = store.read(&ada, ReadOptions::new()).await?;
/// assert!(read.events.is_empty());
/// let claim = || NewEvent::new("UsernameClaimed", vec![]).with_tags(["username:ada"]);
/// let condition = AppendCondition::none_after(ada, read.head);
/// store.append_if(&[claim()], Some(&condition)).await?;
/// let again = store.append_if(&[claim()], Some(&condition)).await;
/// assert!(matches!(again, Err(Error::ConditionFailed { .. })));
/// # Ok(())
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    pool: SqlitePool,
    writer: SqlitePool,
    config: Arc<StoreConfig>,
    append_sql: AppendSql,
    pub(crate) read_sql: ReadSql,
    pub(crate) dcb_sql: DcbSql,
    pub(crate) checkpoint_sql: CheckpointSql,
    pub(crate) coordination_sql: CoordinationSql,
}

impl SqliteEventStore {
    /// A store on `pool`, for reads and writes, with its SQL rendered for `config`'s table names.
    ///
    /// The pool's connections should have a busy timeout (sqlx sets 5 s by default); see
    /// [`SqliteEventStore::with_write_pool`] for a fair queue of writers.
    pub fn new(pool: SqlitePool, config: StoreConfig) -> Self {
        Self::with_write_pool(pool.clone(), pool, config)
    }

    /// A store that reads through `pool` and writes (appends, [`EventStore::begin`],
    /// [`SqliteEventStore::migrate`]) through `writer`, both on the same database. Give `writer`
    /// one connection (`SqlitePoolOptions::max_connections(1)`) to make the process's writers
    /// queue fairly for SQLite's single write lock, as [`SqliteEventStore::connect`] does.
    pub fn with_write_pool(pool: SqlitePool, writer: SqlitePool, config: StoreConfig) -> Self {
        let dcb_sql = DcbSql::new(&config);
        Self {
            append_sql: AppendSql::new(&config, dcb_sql.clone()),
            read_sql: ReadSql::new(&config),
            checkpoint_sql: CheckpointSql::new(&config),
            coordination_sql: CoordinationSql::new(&config),
            dcb_sql,
            config: Arc::new(config),
            pool,
            writer,
        }
    }

    /// Opens the database at `url` and builds a store on it.
    ///
    /// A file database (`sqlite://path/to/file.db`, `sqlite:file.db` or a bare path) is created
    /// if missing and opened in WAL mode with `synchronous = NORMAL`, a 5 s busy timeout and
    /// foreign keys on, through a read pool of up to 10 connections and a write pool of one.
    ///
    /// Every in-memory URL (`sqlite::memory:`, `sqlite:file::memory:`, `:memory:`, a URL with
    /// `mode=memory`, and an empty file name: `""`, `sqlite:`, `sqlite://`) opens one new
    /// in-memory database private to this store (and its clones), shared by all of its pooled
    /// connections, and kept alive while the store's write pool is open. (SQLite would give
    /// each connection a database of its own, so appends would land in one and reads miss
    /// them.) Another store on the same URL gets another database; to share one, open a file.
    ///
    /// Fails with [`pupsourcing_core::Error::Database`] when the URL is malformed or the file
    /// cannot be opened.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self> {
        Self::connect_with(url, config, ConnectOptions::new().max_connections(10)).await
    }

    /// [`SqliteEventStore::connect`] with pool settings: `options.max_connections` sizes the
    /// read pool (the write pool always has one connection), and `options.acquire_timeout`
    /// bounds the wait for a free connection of either pool.
    pub async fn connect_with(
        url: &str,
        config: StoreConfig,
        connect: ConnectOptions,
    ) -> Result<Self> {
        let options = if is_memory(url) {
            private_memory_database()
        } else {
            SqliteConnectOptions::from_str(url)
                .map_err(db)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        let options = options.busy_timeout(BUSY_TIMEOUT).foreign_keys(true);
        // SQLite connections do not go stale: skip the ping before each acquire.
        let pool_options = || {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .acquire_timeout(connect.acquire_timeout)
        };
        // The writer first: its connection creates the file and switches it to WAL. It is kept
        // open for the pool's lifetime, which keeps an in-memory database alive.
        let writer = pool_options()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let pool = pool_options()
            .max_connections(connect.max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(db)?;
        Ok(Self::with_write_pool(pool, writer, config))
    }

    /// Creates the tables and indexes if they do not exist yet, in one transaction. Safe to run
    /// on every start, also from several processes at once. A failed migration is rolled back
    /// before its connection returns to the pool.
    ///
    /// Fails with [`pupsourcing_core::ValidationError::TableNames`], creating nothing, when the
    /// configured names would collide (see [`pupsourcing_core::TableNames::validate`]).
    pub async fn migrate(&self) -> Result<()> {
        self.config.validate()?;
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await.map_err(db)?;
        if let Err(err) = migrate::apply(&mut tx, &self.config).await {
            // Now, rather than queued for the connection's next use.
            let _ = tx.rollback().await;
            return Err(err);
        }
        tx.commit().await.map_err(db)
    }

    /// Which of the configured tables exist: all of them once [`SqliteEventStore::migrate`]
    /// (or the generated migration) has run. Indexes are not checked.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        migrate::status(&self.pool, &self.config).await
    }

    /// The schema SQL for `config`, for migration files; see [`crate::migration_sql`].
    pub fn migration_sql(config: &StoreConfig) -> String {
        migration_sql(config)
    }

    /// The pool the store reads through.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The pool the store writes through (the same as [`SqliteEventStore::pool`] for a store
    /// built with [`SqliteEventStore::new`]).
    pub fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Closes both pools, waiting for connections in use to be returned. Every later call
    /// fails with [`pupsourcing_core::Error::PoolClosed`].
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// The configuration the store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }
}

/// Whether `url` names an in-memory database (`sqlite::memory:`, `file::memory:`, `:memory:`,
/// `mode=memory`) or no file at all (`""`, `sqlite:`, `sqlite://`: SQLite would open a private
/// temporary database per connection).
fn is_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let database = database.strip_prefix("file:").unwrap_or(database);
    database.is_empty() || database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Options opening a new in-memory database under a name no other store uses: connections
/// opened with the same name and a shared cache all see the one database, which lives while
/// any of them is open.
fn private_memory_database() -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(format!("file:pupsourcing-memory-{}", uuid::Uuid::new_v4().simple()))
        .in_memory(true)
        .shared_cache(true)
}

impl EventStore for SqliteEventStore {
    type Connection = SqliteConnection;
    type Transaction = sqlx::Transaction<'static, Sqlite>;

    /// Opens a write transaction on the write pool with `BEGIN IMMEDIATE`: it holds SQLite's
    /// write lock until commit or rollback (waiting up to the busy timeout to get it), so other
    /// writers wait for it while readers go on. Keep it short.
    async fn begin(&self) -> Result<Self::Transaction> {
        self.writer.begin_with(BEGIN_WRITE).await.map_err(db)
    }

    /// Commits. SQLite keeps a transaction open after a failed statement (unlike PostgreSQL),
    /// so the writes before it commit; a transaction SQLite has already ended (rolled back by
    /// an error such as `SQLITE_FULL`, or by a statement of the caller's) fails here.
    ///
    /// sqlx would send COMMIT, fail, and keep counting the transaction as open, so that the
    /// connection refuses every later `BEGIN`. A `BEGIN` goes first instead (in process, no
    /// I/O): it fails inside a transaction, as it should; if it succeeds, SQLite had ended the
    /// transaction, and rolling back the new one leaves sqlx's count right.
    async fn commit(&self, mut tx: Self::Transaction) -> Result<()> {
        if sqlx::raw_sql("BEGIN").execute(&mut *tx).await.is_ok() {
            tx.rollback().await.map_err(db)?;
            return Err(pupsourcing_core::Error::database(NotCommitted));
        }
        tx.commit().await.map_err(db)
    }

    async fn rollback(&self, tx: Self::Transaction) -> Result<()> {
        tx.rollback().await.map_err(db)
    }

    /// Appends inside the caller's transaction (best opened with [`EventStore::begin`]); the
    /// writes go in a savepoint, so a failed append leaves nothing behind in it. A connection
    /// outside any transaction gets a write transaction of its own, committed on success.
    async fn append_in(
        &self,
        conn: &mut SqliteConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        let target = Target::Stream(stream, expected);
        append::append_in(conn, &self.append_sql, &self.config, target, events).await
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult> {
        self.append_own(Target::Stream(stream, expected), events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        range: VersionRange,
    ) -> Result<Vec<RecordedEvent>> {
        let read = read::read_stream(&self.pool, &self.read_sql, &self.config, stream, range);
        limited(self.config.timeouts.query, read).await
    }

    async fn read_stream_in(
        &self,
        conn: &mut SqliteConnection,
        stream: &StreamId,
        range: VersionRange,
    ) -> Result<Vec<RecordedEvent>> {
        read::read_stream(conn, &self.read_sql, &self.config, stream, range).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Version> {
        limited(
            self.config.timeouts.query,
            read::stream_version(&self.pool, &self.read_sql, stream),
        )
        .await
    }

    /// Gap-free without any extra work: see the type's documentation.
    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let read = read::read_all(&self.pool, &self.read_sql, &self.config, from, limit);
        limited(self.config.timeouts.query, read).await
    }

    /// One statement on the caller's connection: SQLite commits in position order, so what the
    /// connection sees is a gap-free prefix (with its own transaction's appends).
    async fn read_all_in(
        &self,
        conn: &mut SqliteConnection,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        read::read_all(conn, &self.read_sql, &self.config, from, limit).await
    }

    async fn head(&self) -> Result<Position> {
        limited(self.config.timeouts.query, read::head(&self.pool, &self.read_sql)).await
    }
}

/// Commits a transaction of the store's own (which ran nothing but the store's statements).
async fn commit_own(tx: sqlx::Transaction<'_, Sqlite>) -> Result<()> {
    tx.commit().await.map_err(db)
}

impl SqliteEventStore {
    /// Validates and appends in a write transaction of the store's own, committed on success.
    async fn append_own(&self, target: Target<'_>, events: &[NewEvent]) -> Result<AppendResult> {
        target.validate(events, &self.config.limits)?;
        let work = async {
            let mut tx = self.begin().await?;
            let result = append::append(
                &mut tx,
                &self.append_sql,
                &self.config,
                target,
                events,
                Atomicity::OwnTransaction,
            )
            .await?;
            Ok((tx, result))
        };
        // The limit ends where COMMIT starts (see pupsourcing_core::timeout).
        write_within(self.config.timeouts.append, work, commit_own).await
    }
}

/// DCB on the same log as the streams: conditional appends share the stream path's insert and
/// idempotency code, and a tag query finds tagged aggregate events too.
///
/// No advisory locks are needed for sound conditions: SQLite has one writer at a time, and the
/// condition check runs in the append's write transaction (`BEGIN IMMEDIATE`, on the
/// one-connection write pool), right before the insert, so no other append can commit between
/// the check and the insert.
impl DcbStore for SqliteEventStore {
    /// Appends inside the caller's transaction (best opened with [`EventStore::begin`]); the
    /// writes go in a savepoint, so a rejected or failed append leaves nothing behind in it. A
    /// connection outside any transaction gets a write transaction of its own, committed on
    /// success. `versions` is empty: the events belong to no stream.
    async fn append_if_in(
        &self,
        conn: &mut SqliteConnection,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> Result<AppendResult> {
        append::append_in(conn, &self.append_sql, &self.config, Target::Dcb(condition), events)
            .await
    }

    async fn append_if(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> Result<AppendResult> {
        self.append_own(Target::Dcb(condition), events).await
    }

    /// Reads in the transaction `conn` is in, or else in a read transaction of its own, so that
    /// the head and the events come from one snapshot.
    async fn read_in(
        &self,
        conn: &mut SqliteConnection,
        query: &Query,
        options: ReadOptions,
    ) -> Result<ReadResult> {
        query.validate(&self.config.limits)?;
        dcb::read(conn, &self.dcb_sql, &self.read_sql, &self.config, query, options).await
    }

    /// Reads through the read pool, in a read transaction (a deferred `BEGIN`: it blocks no
    /// writer).
    async fn read(&self, query: &Query, options: ReadOptions) -> Result<ReadResult> {
        query.validate(&self.config.limits)?;
        limited(self.config.timeouts.query, async {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            dcb::read(&mut conn, &self.dcb_sql, &self.read_sql, &self.config, query, options).await
        })
        .await
    }

    async fn record_command_in(
        &self,
        conn: &mut SqliteConnection,
        command: &CommandRecord,
    ) -> Result<()> {
        command.validate(&self.config.limits)?;
        dcb::record_command(conn, &self.dcb_sql, command).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_in_memory_urls() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            ":memory:",
            "sqlite://?mode=memory",
            "",
            "sqlite:",
            "sqlite://",
            "sqlite:file::memory:",
            "file::memory:?cache=shared",
        ] {
            assert!(is_memory(url), "{url}");
        }
        for url in ["sqlite://events.db", "sqlite:/tmp/x.db?mode=rwc", "memory.db"] {
            assert!(!is_memory(url), "{url}");
        }
    }
}
