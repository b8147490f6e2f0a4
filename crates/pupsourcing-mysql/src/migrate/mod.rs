//! The schema: generated as SQL text for migration files, or applied by
//! [`crate::MySqlEventStore::migrate`].

use pupsourcing_core::{Result, StoreConfig};
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::error::db;
use crate::sql::{own_database, render};

const SCHEMA: &str = include_str!("schema.sql");
const DATABASE: &str = "CREATE DATABASE IF NOT EXISTS {database} \
     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n\n";

/// The SQL that creates the store's tables for `config`, every statement idempotent
/// (`CREATE ... IF NOT EXISTS`), for `pup migrate-gen --adapter mysql` and migration files.
///
/// `config.schema` names the MySQL database holding the tables, created first if missing;
/// the default, `public`, means the database the connection URL names (tables unqualified).
/// The events-related tables are created: the events, the position counter
/// (`<events>_counter`), the aggregate heads, the DCB tag index (`<events>_tags`) and lock rows
/// (`<events>_locks`), and the commands; the projection tables (checkpoints, dead letters) and
/// the orchestrator's (workers, shards, the recreate lock, its row at generation 0).
///
/// ```
/// use pupsourcing_core::StoreConfig;
/// let config = StoreConfig::default().schema("billing").unwrap();
/// let sql = pupsourcing_mysql::migration_sql(&config);
/// assert!(sql.contains("CREATE DATABASE IF NOT EXISTS `billing`"));
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS `billing`.`events_tags`"));
/// ```
pub fn migration_sql(config: &StoreConfig) -> String {
    let database = if own_database(config) { render(DATABASE, config) } else { String::new() };
    database + &render(SCHEMA, config)
}

/// Applies the schema. MySQL commits each DDL statement implicitly, so there is no transaction
/// to roll back: every statement is idempotent instead, and a failed migration can simply run
/// again. Concurrent migrations wait for each other on MySQL's metadata locks.
pub(crate) async fn apply(pool: &MySqlPool, config: &StoreConfig) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(db)?;
    sqlx::raw_sql(AssertSqlSafe(migration_sql(config))).execute(&mut *conn).await.map_err(db)?;
    Ok(())
}
