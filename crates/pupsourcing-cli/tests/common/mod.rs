//! Test support: `pup` run as a user runs it, against a fresh SQLite file, a fresh PostgreSQL
//! schema or a fresh MySQL/MariaDB database, and the library to set up state the CLI only
//! reads (checkpoints, dead letters).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;

use assert_cmd::Command;
use pupsourcing_core::coordination::{CoordinationStore, ShardId, WorkerState};
use pupsourcing_core::projection::{DeadLetter, Partition, ProjectionStore};
use pupsourcing_core::{ConnectOptions, StoreConfig};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_postgres::PgEventStore;
use pupsourcing_sqlite::SqliteEventStore;

/// The PostgreSQL test server's URL.
pub fn pg_url() -> String {
    pupsourcing_testkit::env_or("PUP_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
}

/// The MySQL/MariaDB test server's URL.
pub fn mysql_url() -> String {
    pupsourcing_testkit::env_or("PUP_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

/// A URL nothing listens on (port 1 is closed): connecting fails at once.
pub const CLOSED_PORT_URL: &str = "postgres://postgres@127.0.0.1:1/test";

/// A MySQL URL nothing listens on.
pub const MYSQL_CLOSED_PORT_URL: &str = "mysql://root@127.0.0.1:1/test";

/// `pup` with no environment of ours: `DATABASE_URL` from the environment would leak in.
pub fn pup() -> Command {
    let mut command = Command::cargo_bin("pup").expect("the pup binary is built");
    command.env_remove("DATABASE_URL");
    command
}

/// Which backend a [`Db`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    MySql,
}

/// A database the tests run `pup` against: its URL and the flags that select the store.
#[derive(Clone, Debug)]
pub struct Db {
    pub kind: Kind,
    pub url: String,
    /// `--schema NAME` on PostgreSQL and MySQL (each test its own schema or database),
    /// nothing on SQLite.
    pub schema: Option<String>,
    /// The SQLite file, if any.
    pub file: Option<PathBuf>,
    /// Drops the MySQL database when the last clone goes.
    _dropped: Option<Arc<DropDatabase>>,
}

impl Db {
    /// A new SQLite file that does not exist yet.
    pub fn sqlite() -> Option<Db> {
        let dir = std::env::temp_dir().join("pup-cli-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.db", uuid::Uuid::now_v7()));
        let url = format!("sqlite://{}", file.display());
        Some(Db { kind: Kind::Sqlite, url, schema: None, file: Some(file), _dropped: None })
    }

    /// A new schema of the PostgreSQL test database (named like the backend tests' schemas,
    /// which drop those older than an hour), or `None` when the server is unreachable.
    pub fn postgres() -> Option<Db> {
        let db = Db {
            kind: Kind::Postgres,
            url: pg_url(),
            schema: Some(unique_name()),
            file: None,
            _dropped: None,
        };
        db.reachable("PostgreSQL")
    }

    /// A new database on the MySQL/MariaDB test server (`--schema` names it; `migrate apply`
    /// creates it), dropped when the test ends (and, if a test aborts, by the mysql crate's
    /// tests, which drop `pup_test_` databases older than an hour); or `None` when the server
    /// is unreachable.
    pub fn mysql() -> Option<Db> {
        let name = unique_name();
        let url = mysql_url();
        let dropped = DropDatabase { url: url.clone(), name: name.clone() };
        let db = Db {
            kind: Kind::MySql,
            url,
            schema: Some(name),
            file: None,
            _dropped: Some(Arc::new(dropped)),
        };
        db.reachable("MySQL")
    }

    /// `self`, or `None` when its server does not answer. Probes with the CLI itself:
    /// `migrate status` connects and creates nothing.
    fn reachable(self, server: &str) -> Option<Db> {
        let out = self.pup(&["migrate", "status"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("cannot connect") {
            // The error's line, without the hint.
            let error = stderr.lines().next().unwrap_or_default().trim();
            return pupsourcing_testkit::unreachable(server, error);
        }
        Some(self)
    }

    /// How many tables `migrate status` lists: the 8 configured ones, and on MySQL the
    /// counter, tag index, lock rows and worker lock rows tables.
    pub fn schema_objects(&self) -> usize {
        if self.kind == Kind::MySql { 12 } else { 8 }
    }

    /// Whether `pup tail` gets wake-ups (PostgreSQL's NOTIFY) rather than polling.
    pub fn wakes_up(&self) -> bool {
        self.kind == Kind::Postgres
    }

    /// `pup` with `--database-url` and the schema flag, then `args`.
    pub fn pup(&self, args: &[&str]) -> Command {
        let mut command = pup();
        command.args(["--database-url", &self.url]);
        if let Some(schema) = &self.schema {
            command.args(["--schema", schema]);
        }
        command.args(args);
        command
    }

    /// `pup` as a `std::process::Command`, to spawn it and read its output as it comes.
    pub fn spawnable(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pup"));
        command.env_remove("DATABASE_URL").args(["--database-url", &self.url]);
        if let Some(schema) = &self.schema {
            command.args(["--schema", schema]);
        }
        command.args(args);
        command
    }

    /// Runs `pup args` and returns its output, whatever its exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.pup(args).output().unwrap()
    }

    /// Runs `pup args`, asserting success; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pup {args:?} failed ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `pup migrate apply`.
    pub fn migrated(self) -> Db {
        self.ok(&["migrate", "apply"]);
        self
    }

    fn config(&self) -> StoreConfig {
        match &self.schema {
            Some(schema) => StoreConfig::default().schema(schema).unwrap(),
            None => StoreConfig::default(),
        }
    }

    /// Runs `f` on a library store of this database (for state the CLI only reads).
    pub fn with_store<F>(&self, f: F)
    where
        F: AsyncFnOnce(&dyn Setup),
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let options = ConnectOptions::new().max_connections(2);
        runtime.block_on(async {
            match self.kind {
                Kind::Postgres => {
                    let store = PgEventStore::connect_with(&self.url, self.config(), options);
                    let store = store.await.unwrap();
                    f(&store).await;
                    store.close().await;
                }
                Kind::MySql => {
                    let store = MySqlEventStore::connect_with(&self.url, self.config(), options);
                    let store = store.await.unwrap();
                    f(&store).await;
                    store.close().await;
                }
                Kind::Sqlite => {
                    let store = SqliteEventStore::connect(&self.url, self.config()).await.unwrap();
                    f(&store).await;
                    store.close().await;
                }
            }
        });
    }
}

/// A schema or database name for one test: `pup_test_<unix seconds>_<random>`, like the
/// backend tests' names, so that those drop it once it is older than an hour.
pub fn unique_name() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("pup_test_{secs}_{}", &random[..12])
}

/// A MySQL database dropped on drop (errors ignored: the server may be gone, or the database
/// never created).
#[derive(Debug)]
struct DropDatabase {
    url: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        use pupsourcing_mysql::sqlx::{self, Connection};
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(async {
            let Ok(mut conn) = sqlx::MySqlConnection::connect(&self.url).await else { return };
            let drop = format!("DROP DATABASE IF EXISTS `{}`", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await;
            let _ = conn.close().await;
        });
    }
}

/// What the tests set up through the library, on either backend.
pub trait Setup {
    /// Creates the checkpoint of `projection` partition `key`/`count` at 0.
    fn checkpoint<'a>(&'a self, projection: &'a str, key: u32, count: u32) -> BoxFuture<'a, ()>;
    /// Stores `error` as the partition's last error (a failed partition).
    fn fail<'a>(&'a self, projection: &'a str, error: &'a str) -> BoxFuture<'a, ()>;
    /// Sets the event at `position` aside as a dead letter of `projection`.
    fn dead_letter<'a>(&'a self, projection: &'a str, position: i64) -> BoxFuture<'a, ()>;
    /// Registers `worker` (generation 0, running) and gives it shard 0 of `count` shards of
    /// `projection` (the others stay unowned).
    fn worker_with_shard<'a>(
        &'a self,
        worker: &'a str,
        projection: &'a str,
        count: u32,
    ) -> BoxFuture<'a, ()>;
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<S: CoordinationStore> Setup for S {
    fn checkpoint<'a>(&'a self, projection: &'a str, key: u32, count: u32) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let partition = Partition::new(key, count).unwrap();
            ProjectionStore::checkpoint(self, projection, partition).await.unwrap();
        })
    }

    fn fail<'a>(&'a self, projection: &'a str, error: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let partition = Partition::default();
            self.set_checkpoint_error(projection, partition, Some(error)).await.unwrap();
        })
    }

    fn dead_letter<'a>(&'a self, projection: &'a str, position: i64) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let event = self.read_all(position, 1).await.unwrap().remove(0);
            let letter = DeadLetter {
                projection: projection.to_string(),
                partition: Partition::default(),
                position,
                event_id: event.event_id,
                error: "handler refused it".into(),
                attempts: 1,
                recorded_at: chrono::Utc::now(),
            };
            let mut tx = self.begin().await.unwrap();
            self.add_dead_letter_in(&mut tx, &letter).await.unwrap();
            self.commit(tx).await.unwrap();
        })
    }

    fn worker_with_shard<'a>(
        &'a self,
        worker: &'a str,
        projection: &'a str,
        count: u32,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.register_worker(worker, 0, WorkerState::Running).await.unwrap();
            self.ensure_shards(projection, count, 0).await.unwrap();
            let shard = ShardId { projection: projection.to_string(), shard: 0, count };
            self.assign_shard(&shard, 0, Some(worker)).await.unwrap().expect("epoch 0");
        })
    }
}

/// Appends `n` events through the CLI: `Order` stream events of type `OrderPlaced`
/// (tagged `n:<i>`), alternating with tagged `CourseDefined` events.
pub fn append_some(db: &Db, n: usize) {
    for i in 0..n {
        let tag = format!("n:{i}");
        if i % 2 == 0 {
            let stream = format!("Order/{}", uuid::Uuid::now_v7());
            db.ok(&[
                "append",
                "--type",
                "OrderPlaced",
                "--data",
                r#"{"total":1}"#,
                "--stream",
                &stream,
                "--tag",
                &tag,
            ]);
        } else {
            db.ok(&[
                "append",
                "--type",
                "CourseDefined",
                "--tag",
                "course:c1",
                "--tag",
                &tag,
                "--bounded-context",
                "school",
            ]);
        }
    }
}

/// One `#[test]` per backend for each listed generic test function `fn(Db)`.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $test() { if let Some(db) = $crate::common::Db::sqlite() { super::$test(db) } })*
        }
        mod postgres {
            $(#[test] fn $test() { if let Some(db) = $crate::common::Db::postgres() { super::$test(db) } })*
        }
        mod mysql {
            $(#[test] fn $test() { if let Some(db) = $crate::common::Db::mysql() { super::$test(db) } })*
        }
    };
}
