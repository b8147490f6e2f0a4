//! Test support: a fresh store in a database of its own on the test server.

#![allow(dead_code)]

pub mod read_model;

use pupsourcing_core::{ConnectOptions, StoreConfig};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_mysql::sqlx::{self, MySqlPool};

/// The test server's URL.
pub fn url() -> String {
    pupsourcing_testkit::env_or("PUP_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

/// The test server's URL with `database` as the connection's database (which must exist), so
/// that the sessions of a pool on it show that database in `information_schema.PROCESSLIST`.
pub fn url_for(database: &str) -> String {
    let url = url();
    let (base, query) = url.split_once('?').map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a URL with a database path");
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// A unique database name for one test: `pup_test_<unix seconds>_<random>`, so that later
/// runs can tell stale databases from those of tests still running.
pub fn unique_database() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("pup_test_{}_{}", unix_seconds(), &random[..12])
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Test databases older than this are left over by earlier runs and dropped.
const STALE_AFTER_SECS: u64 = 3600;

/// Most connections of one test store's pool (the server's connections are shared).
pub const POOL_SIZE: u32 = 5;

/// Drops the databases earlier test runs left behind (tests do not drop their own: the
/// conformance functions own the store until they end). Once per test binary.
async fn drop_stale_databases(pool: &MySqlPool) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let names: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT CAST(schema_name AS BINARY) FROM information_schema.schemata \
             WHERE schema_name LIKE 'pup\\_test\\_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        let cutoff = unix_seconds().saturating_sub(STALE_AFTER_SECS);
        for name in names.into_iter().filter_map(|n| String::from_utf8(n).ok()) {
            let born = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            if born < cutoff {
                let drop = format!("DROP DATABASE IF EXISTS `{name}`");
                // Another binary may be dropping it at the same moment; that is fine.
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(pool).await;
            }
        }
    })
    .await;
}

/// How long the probe waits for the server to answer at all.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the server answers: asked once per test binary, so that an unreachable server skips
/// every test at once.
pub async fn probe() -> Result<(), String> {
    static PROBE: tokio::sync::OnceCell<Result<(), String>> = tokio::sync::OnceCell::const_new();
    PROBE
        .get_or_init(|| async {
            use sqlx::Connection;
            match tokio::time::timeout(PROBE_TIMEOUT, sqlx::MySqlConnection::connect(&url())).await
            {
                Ok(Ok(conn)) => {
                    let pool = MySqlPool::connect_lazy(&url()).map_err(|e| e.to_string())?;
                    drop_stale_databases(&pool).await;
                    pool.close().await;
                    let _ = conn.close().await;
                    Ok(())
                }
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            }
        })
        .await
        .clone()
}

/// A store with `config` (its schema is the database), not migrated, or `None` when the
/// server is unreachable.
pub async fn connect(config: StoreConfig) -> Option<MySqlEventStore> {
    if let Err(err) = probe().await {
        return pupsourcing_testkit::unreachable("MySQL", err);
    }
    let options = ConnectOptions::new().max_connections(POOL_SIZE);
    match MySqlEventStore::connect_with(&url(), config, options).await {
        Ok(store) => Some(store),
        Err(err) => pupsourcing_testkit::unreachable("MySQL", err),
    }
}

/// A migrated store with `config` in a new database, or `None` when the server is unreachable.
pub async fn store_with(config: StoreConfig) -> Option<MySqlEventStore> {
    let config = config.schema(&unique_database()).unwrap();
    let store = connect(config).await?;
    store.migrate().await.expect("migration applies");
    Some(store)
}

/// A migrated store with the default configuration in a new database.
pub async fn fresh_store() -> Option<MySqlEventStore> {
    store_with(StoreConfig::default()).await
}

/// A migrated store in a new database on a pool built without the store's session setup:
/// sessions at the server's default isolation (InnoDB: REPEATABLE READ) and SQL mode, as a
/// pool of the application's would be.
pub async fn plain_pool_store() -> Option<MySqlEventStore> {
    if let Err(err) = probe().await {
        return pupsourcing_testkit::unreachable("MySQL", err);
    }
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(&url())
        .await
        .expect("the probe connected");
    let config = StoreConfig::default().schema(&unique_database()).unwrap();
    let store = MySqlEventStore::new(pool, config);
    store.migrate().await.expect("migration applies");
    Some(store)
}
