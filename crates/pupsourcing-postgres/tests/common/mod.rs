//! Test support: a fresh store in a unique schema of the test database.

#![allow(dead_code)]

use pupsourcing_core::StoreConfig;
use pupsourcing_postgres::PgEventStore;
use sqlx::postgres::PgPoolOptions;

/// The test server's URL.
pub fn url() -> String {
    pupsourcing_testkit::env_or("PUP_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
}

/// A unique schema name for one test.
pub fn unique_schema() -> String {
    format!("pup_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// A migrated store in a new schema, or `None` (skip) when the server is unreachable.
pub async fn fresh_store() -> Option<PgEventStore> {
    let config = StoreConfig::default().schema(&unique_schema()).unwrap();
    store_with(config).await
}

/// A migrated store with `config`, or `None` when the server is unreachable.
pub async fn store_with(config: StoreConfig) -> Option<PgEventStore> {
    let pool = match PgPoolOptions::new().max_connections(20).connect(&url()).await {
        Ok(pool) => pool,
        Err(err) => return pupsourcing_testkit::unreachable("PostgreSQL", err),
    };
    let store = PgEventStore::new(pool, config);
    store.migrate().await.expect("migration applies");
    Some(store)
}
