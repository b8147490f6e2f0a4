//! Test support: a fresh store in a unique schema of the test database.

#![allow(dead_code)]

pub mod read_model;

use pupsourcing_core::StoreConfig;
use pupsourcing_postgres::PgEventStore;
use sqlx::postgres::PgPoolOptions;

/// The test server's URL.
pub fn url() -> String {
    pupsourcing_testkit::env_or("PUP_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
}

/// A unique schema name for one test: `pup_test_<unix seconds>_<random>`, so that later runs
/// can tell stale schemas from those of tests still running.
pub fn unique_schema() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("pup_test_{}_{}", unix_seconds(), &random[..12])
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Test schemas older than this are left over by earlier runs and dropped.
const STALE_AFTER_SECS: u64 = 3600;

/// Drops the schemas earlier test runs left behind (tests do not drop their own: the
/// conformance functions own the store until they end). Once per test binary.
async fn drop_stale_schemas(pool: &sqlx::PgPool) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'pup\\_test\\_%'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        let cutoff = unix_seconds().saturating_sub(STALE_AFTER_SECS);
        for name in names {
            let born = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            if born < cutoff {
                let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                // Another binary may be dropping it at the same moment; that is fine.
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(pool).await;
            }
        }
    })
    .await;
}

/// A migrated store in a new schema, or `None` (skip) when the server is unreachable.
pub async fn fresh_store() -> Option<PgEventStore> {
    let config = StoreConfig::default().schema(&unique_schema()).unwrap();
    store_with(config).await
}

/// How long the probe waits for the server to answer at all.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the server answers: asked once per test binary, so that an unreachable server skips
/// every test at once instead of making each wait for a pool's acquire timeout.
pub async fn probe() -> Result<(), String> {
    static PROBE: tokio::sync::OnceCell<Result<(), String>> = tokio::sync::OnceCell::const_new();
    PROBE
        .get_or_init(|| async {
            use sqlx::Connection;
            match tokio::time::timeout(PROBE_TIMEOUT, sqlx::PgConnection::connect(&url())).await {
                Ok(Ok(conn)) => {
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

/// A migrated store with `config`, or `None` when the server is unreachable.
pub async fn store_with(config: StoreConfig) -> Option<PgEventStore> {
    if let Err(err) = probe().await {
        return pupsourcing_testkit::unreachable("PostgreSQL", err);
    }
    let pool = match PgPoolOptions::new().max_connections(20).connect(&url()).await {
        Ok(pool) => pool,
        Err(err) => return pupsourcing_testkit::unreachable("PostgreSQL", err),
    };
    drop_stale_schemas(&pool).await;
    let store = PgEventStore::new(pool, config);
    store.migrate().await.expect("migration applies");
    Some(store)
}

/// A migrated store in a new schema whose pool sessions default to `isolation` (for example
/// `repeatable read`), set per connection, or `None` when the server is unreachable.
pub async fn store_with_default_isolation(isolation: &str) -> Option<PgEventStore> {
    use sqlx::postgres::PgConnectOptions;
    let options: PgConnectOptions = url().parse().expect("a valid PUP_POSTGRES_URL");
    let options = options.options([("default_transaction_isolation", isolation)]);
    let pool = match PgPoolOptions::new().max_connections(20).connect_with(options).await {
        Ok(pool) => pool,
        Err(err) => return pupsourcing_testkit::unreachable("PostgreSQL", err),
    };
    drop_stale_schemas(&pool).await;
    let config = StoreConfig::default().schema(&unique_schema()).unwrap();
    let store = PgEventStore::new(pool, config);
    store.migrate().await.expect("migration applies");
    Some(store)
}

/// [`store_with_default_isolation`] at REPEATABLE READ.
pub async fn repeatable_read_store() -> Option<PgEventStore> {
    store_with_default_isolation("repeatable read").await
}

/// The store's writer slots: the first blocker runs the direct path, the second a writer task.
pub const BLOCKERS: usize = 2;
/// Long enough for spawned tasks to queue, well below the writers' lock timeout (200 ms).
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(40);

/// Appends that wait on a head row locked by an open transaction of `holder` (returned) and
/// occupy `store`'s writer slots (handles returned): the first waits alone on the direct path,
/// the second in a writer task. Committing or rolling back the transaction releases them.
pub async fn hold_the_writer_slots(
    holder: &pupsourcing_postgres::PgEventStore,
    store: &pupsourcing_postgres::PgEventStore,
) -> (
    sqlx::Transaction<'static, sqlx::Postgres>,
    Vec<tokio::task::JoinHandle<pupsourcing_core::Result<pupsourcing_core::AppendResult>>>,
) {
    use pupsourcing_core::{EventStore, ExpectedVersion};
    use pupsourcing_testkit::{event, new_stream};
    let blocked = new_stream();
    let mut tx = holder.begin().await.unwrap();
    holder.append_in(&mut tx, &blocked, ExpectedVersion::Any, &[event("Held")]).await.unwrap();
    let mut blockers = Vec::new();
    for _ in 0..BLOCKERS {
        let (store, blocked) = (store.clone(), blocked.clone());
        blockers.push(tokio::spawn(async move {
            store.append(&blocked, ExpectedVersion::Any, &[event("Blocked")]).await
        }));
        tokio::time::sleep(SETTLE).await;
    }
    (tx, blockers)
}

/// Runs `appends` while the writer slots are held, so that they queue, then releases them all
/// together and returns their results in order.
pub async fn queued<F>(
    store: &pupsourcing_postgres::PgEventStore,
    appends: Vec<F>,
) -> Vec<pupsourcing_core::Result<pupsourcing_core::AppendResult>>
where
    F: std::future::Future<Output = pupsourcing_core::Result<pupsourcing_core::AppendResult>>
        + Send
        + 'static,
{
    use pupsourcing_core::EventStore;
    let (tx, blockers) = hold_the_writer_slots(store, store).await;
    let tasks: Vec<tokio::task::JoinHandle<_>> = appends.into_iter().map(tokio::spawn).collect();
    tokio::time::sleep(SETTLE).await;
    store.commit(tx).await.unwrap();
    for blocker in blockers {
        blocker.await.unwrap().unwrap();
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}
