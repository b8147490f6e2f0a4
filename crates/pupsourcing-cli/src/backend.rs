//! Which database a URL names, and running a command on its store.
//!
//! Every command that talks to a database implements [`OnStore`]: one generic function over
//! [`Backend`], the store traits plus the few inherent calls the CLI needs. [`with_store`]
//! picks the backend from the URL's scheme, so a new backend is one more `impl Backend` and
//! one more match arm.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use clap::Args;
use pupsourcing_core::coordination::CoordinationStore;
use pupsourcing_core::dcb::DcbStore;
use pupsourcing_core::projection::ProjectionStore;
use pupsourcing_core::{
    ConnectOptions, EventStore, Result, SchemaStatus, StoreConfig, ValidationError,
};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_postgres::PgEventStore;
use pupsourcing_sqlite::SqliteEventStore;
use tokio::sync::watch;

use crate::error::{CliError, chain};

/// Where the store is: the database URL and the store's schema and table names.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Database URL; its scheme picks the backend: postgres://, sqlite:// (or sqlite:PATH),
    /// mysql:// (or mariadb://) [env: DATABASE_URL]
    #[arg(long, env = "DATABASE_URL", global = true, hide_env = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub tables: TableArgs,
}

/// The schema and table names, as `StoreConfig` names them: the same flags for every
/// command, so `pup status` finds the tables `pup migrate apply` created.
#[derive(Args, Debug, Clone)]
pub struct TableArgs {
    /// Schema holding the tables (PostgreSQL; on MySQL the database, created by `migrate apply`,
    /// `public` meaning the URL's; ignored by SQLite).
    #[arg(long, global = true, default_value = "public")]
    pub schema: String,
    /// Name of the events table (at most 44 bytes, so that names derived from it fit).
    #[arg(long, global = true, default_value = "events")]
    pub events_table: String,
    /// Name of the aggregate heads table (default: `aggregate_heads` for the events table
    /// `events`, `<events>_heads` otherwise, as `StoreConfig::events_table` names it).
    #[arg(long, global = true)]
    pub aggregate_heads_table: Option<String>,
    /// Name of the DCB commands table (default: `commands` for the events table `events`,
    /// `<events>_commands` otherwise).
    #[arg(long, global = true)]
    pub commands_table: Option<String>,
    /// Name of the projection checkpoints table (default: `projection_checkpoints` for the
    /// events table `events`, `<events>_checkpoints` otherwise).
    #[arg(long, global = true)]
    pub checkpoints_table: Option<String>,
    /// Name of the projection dead letters table (default: `projection_dead_letters` for the
    /// events table `events`, `<events>_dead_letters` otherwise).
    #[arg(long, global = true)]
    pub dead_letters_table: Option<String>,
    /// Name of the orchestrator workers table (default: `workers` for the events table
    /// `events`, `<events>_workers` otherwise; at most 54 bytes, so that names derived from it
    /// fit: MySQL's `<workers>_locks`).
    #[arg(long, global = true)]
    pub workers_table: Option<String>,
    /// Name of the orchestrator shards table (default: `projection_shards` for the events
    /// table `events`, `<events>_shards` otherwise).
    #[arg(long, global = true)]
    pub projection_shards_table: Option<String>,
    /// Name of the orchestrator recreate lock table (default: `recreate_lock` for the events
    /// table `events`, `<events>_recreate_lock` otherwise).
    #[arg(long, global = true)]
    pub recreate_lock_table: Option<String>,
}

impl TableArgs {
    /// The store configuration these names describe, validated as the store validates it.
    pub fn config(&self) -> std::result::Result<StoreConfig, CliError> {
        let invalid = |e: ValidationError| CliError::new(e.to_string());
        // The events table first: the other tables default to names derived from it, exactly
        // as a store configured with the same setters names them.
        let mut config = StoreConfig::default()
            .schema(&self.schema)
            .and_then(|c| c.events_table(&self.events_table))
            .map_err(invalid)?;
        type Setter = fn(StoreConfig, &str) -> std::result::Result<StoreConfig, ValidationError>;
        let overrides: [(&Option<String>, Setter); 7] = [
            (&self.aggregate_heads_table, StoreConfig::aggregate_heads_table),
            (&self.commands_table, StoreConfig::commands_table),
            (&self.checkpoints_table, StoreConfig::checkpoints_table),
            (&self.dead_letters_table, StoreConfig::dead_letters_table),
            (&self.workers_table, StoreConfig::workers_table),
            (&self.projection_shards_table, StoreConfig::shards_table),
            (&self.recreate_lock_table, StoreConfig::recreate_lock_table),
        ];
        for (name, set) in overrides {
            if let Some(name) = name {
                config = set(config, name).map_err(invalid)?;
            }
        }
        config.validate().map_err(invalid)?;
        Ok(config)
    }
}

/// A store the CLI can drive: the store traits every backend implements, plus the inherent
/// calls (migrations, wake-ups, closing) each backend offers under its own type.
pub trait Backend: EventStore + DcbStore + ProjectionStore + CoordinationStore {
    /// Creates the schema if missing (idempotent).
    fn apply_schema(&self) -> impl Future<Output = Result<()>> + Send;
    /// Which configured tables exist.
    fn schema(&self) -> impl Future<Output = Result<SchemaStatus>> + Send;
    /// A receiver that changes after appends commit, where the backend pushes them
    /// (PostgreSQL's NOTIFY); `None` where readers poll.
    fn wakeups(&self) -> impl Future<Output = Result<Option<watch::Receiver<()>>>> + Send;
    /// Closes the store's connections.
    fn shut(&self) -> impl Future<Output = ()> + Send;
}

impl Backend for PgEventStore {
    async fn apply_schema(&self) -> Result<()> {
        self.migrate().await
    }
    async fn schema(&self) -> Result<SchemaStatus> {
        self.schema_status().await
    }
    async fn wakeups(&self) -> Result<Option<watch::Receiver<()>>> {
        PgEventStore::wakeups(self).await.map(Some)
    }
    async fn shut(&self) {
        self.close().await
    }
}

impl Backend for SqliteEventStore {
    async fn apply_schema(&self) -> Result<()> {
        self.migrate().await
    }
    async fn schema(&self) -> Result<SchemaStatus> {
        self.schema_status().await
    }
    async fn wakeups(&self) -> Result<Option<watch::Receiver<()>>> {
        Ok(None)
    }
    async fn shut(&self) {
        self.close().await
    }
}

impl Backend for MySqlEventStore {
    async fn apply_schema(&self) -> Result<()> {
        self.migrate().await
    }
    async fn schema(&self) -> Result<SchemaStatus> {
        self.schema_status().await
    }
    async fn wakeups(&self) -> Result<Option<watch::Receiver<()>>> {
        Ok(None)
    }
    async fn shut(&self) {
        self.close().await
    }
}

/// A command that runs on a store, whatever its backend.
pub trait OnStore {
    /// Whether the command needs the schema in place (every one but `migrate`).
    const NEEDS_SCHEMA: bool = true;
    /// Whether the command may create the database (a SQLite file): only `migrate apply`.
    const CREATES_DATABASE: bool = false;
    /// Runs it.
    fn run<B: Backend>(
        self,
        store: &B,
    ) -> impl Future<Output = std::result::Result<(), CliError>> + Send;
}

/// The databases a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`.
    Sqlite,
    /// `mysql://` or `mariadb://`.
    MySql,
}

impl Scheme {
    /// The backend `url` names, from its scheme.
    pub fn of(url: &str) -> std::result::Result<Scheme, CliError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(Scheme::Postgres),
            Some("sqlite") => Ok(Scheme::Sqlite),
            Some("mysql" | "mariadb") => Ok(Scheme::MySql),
            _ => Err(CliError::new(format!("unsupported database URL {:?}", redact(url))).hint(
                "use postgres://USER@HOST/DB, sqlite://PATH (or sqlite::memory:) or mysql://USER@HOST/DB",
            )),
        }
    }
}

/// The pool of a CLI store: a command needs few connections, and the server is shared.
fn connect_options() -> ConnectOptions {
    ConnectOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(10))
}

/// The database URL from `--database-url` or `DATABASE_URL`.
pub fn url(db: &DatabaseArgs) -> std::result::Result<&str, CliError> {
    db.database_url.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| {
        CliError::new("no database URL")
            .hint("pass --database-url URL or set DATABASE_URL (postgres://, sqlite://, mysql://)")
    })
}

/// Opens the store `db` names and runs `command` on it, then closes it.
pub async fn with_store<C: OnStore>(
    db: &DatabaseArgs,
    command: C,
) -> std::result::Result<(), CliError> {
    let url = url(db)?;
    let config = db.tables.config()?;
    match Scheme::of(url)? {
        Scheme::Postgres => {
            let store = PgEventStore::connect_with(url, config, connect_options())
                .await
                .map_err(unreachable)?;
            run_on(&store, command).await
        }
        Scheme::Sqlite => {
            if !C::CREATES_DATABASE {
                sqlite_file_exists(url)?;
            }
            let store = SqliteEventStore::connect_with(url, config, connect_options())
                .await
                .map_err(unreachable)?;
            run_on(&store, command).await
        }
        Scheme::MySql => {
            let store = MySqlEventStore::connect_with(url, config, connect_options())
                .await
                .map_err(unreachable)?;
            run_on(&store, command).await
        }
    }
}

async fn run_on<B: Backend, C: OnStore>(
    store: &B,
    command: C,
) -> std::result::Result<(), CliError> {
    let outcome = async {
        if C::NEEDS_SCHEMA {
            require_schema(store).await?;
        }
        command.run(store).await
    }
    .await;
    store.shut().await;
    outcome
}

/// Fails with a hint when the store's tables are missing, rather than with the database's
/// "relation does not exist" halfway through a command.
async fn require_schema<B: Backend>(store: &B) -> std::result::Result<(), CliError> {
    let status = store.schema().await?;
    if status.is_applied() {
        return Ok(());
    }
    let missing: Vec<&str> = status.missing().map(|t| t.name.as_str()).collect();
    Err(CliError::new(format!(
        "the pupsourcing schema is not applied in {} (missing tables: {})",
        status.location,
        missing.join(", ")
    ))
    .hint("run `pup migrate apply` with the same --database-url, --schema and table names"))
}

fn unreachable(err: pupsourcing_core::Error) -> CliError {
    CliError::new(format!("cannot connect to the database: {}", chain(&err)))
        .hint("check that the server is running and the URL (--database-url or DATABASE_URL)")
}

/// A SQLite URL naming a file that does not exist fails here: opening it would create an
/// empty database (only `pup migrate apply` should).
fn sqlite_file_exists(url: &str) -> std::result::Result<(), CliError> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    let memory = path.is_empty() || path.contains(":memory:") || url.contains("mode=memory");
    if memory || Path::new(path).exists() {
        return Ok(());
    }
    Err(CliError::new(format!("no SQLite database at {path}"))
        .hint("check the path, or create the database with `pup migrate apply`"))
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}
