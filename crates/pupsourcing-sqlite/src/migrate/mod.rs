//! The schema: generated as SQL text for migration files, or applied by [`crate::SqliteEventStore::migrate`].

use pupsourcing_core::{Result, SchemaStatus, StoreConfig};
use sqlx::SqlitePool;
use sqlx::{AssertSqlSafe, SqliteConnection};

use crate::error::db;
use crate::sql::render;

const SCHEMA: &str = include_str!("schema.sql");

/// The SQL that creates the store's tables and indexes for `config`, every statement idempotent
/// (`CREATE ... IF NOT EXISTS`). Table names come from `config.tables` (the DCB tag index is
/// named after the events table, `<events>_tags`); SQLite has no schemas, so `config.schema` is
/// ignored.
///
/// It creates the projection tables (`config.tables.checkpoints` and `.dead_letters`) and the
/// orchestrator's coordination tables (`config.tables.workers`, `.shards` and `.recreate_lock`,
/// the last with its one row at generation 0, running) too. An
/// events table created before the partition hash column existed is left as it is by this
/// SQL: [`crate::SqliteEventStore::migrate`] adds the column to it (SQLite has no
/// `ADD COLUMN IF NOT EXISTS`), with 0 as the hash of the events stored until then.
///
/// ```
/// use pupsourcing_core::StoreConfig;
/// let sql = pupsourcing_sqlite::migration_sql(&StoreConfig::default().events_table("billing_events").unwrap());
/// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "billing_events""#));
/// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "billing_events_tags""#));
/// ```
pub fn migration_sql(config: &StoreConfig) -> String {
    render(SCHEMA, config)
}

/// Applies the schema on `conn`, which must hold the write lock (a `BEGIN IMMEDIATE`
/// transaction), so that concurrent migrations run one after the other.
///
/// A database created before the DCB tag index existed gets the index filled from the events'
/// tags, once: when this call is the one that creates the index. An events table created before
/// the partition hash existed gets the column, with hash 0 for the events it holds.
pub(crate) async fn apply(conn: &mut SqliteConnection, config: &StoreConfig) -> Result<()> {
    let tags_table = format!("{}_tags", config.tables.events.as_str());
    let had_tag_index: bool = sqlx::query_scalar(include_str!("tags_table_exists.sql"))
        .bind(tags_table)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    sqlx::raw_sql(AssertSqlSafe(migration_sql(config))).execute(&mut *conn).await.map_err(db)?;
    if !had_tag_index {
        sqlx::query(AssertSqlSafe(render(include_str!("backfill_tags.sql"), config)))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let has_partition_hash: bool = sqlx::query_scalar(include_str!("partition_hash_exists.sql"))
        .bind(config.tables.events.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if !has_partition_hash {
        sqlx::query(AssertSqlSafe(render(include_str!("add_partition_hash.sql"), config)))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Which of the configured tables exist (SQLite has no schemas: the location is `main`).
pub(crate) async fn status(pool: &SqlitePool, config: &StoreConfig) -> Result<SchemaStatus> {
    let names: Vec<String> =
        sqlx::query_scalar(include_str!("tables.sql")).fetch_all(pool).await.map_err(db)?;
    // SQLite resolves names case-insensitively; identifiers are lower case already.
    let present =
        |t: &pupsourcing_core::Identifier| names.iter().any(|n| n.eq_ignore_ascii_case(t.as_str()));
    Ok(SchemaStatus::new("main", &config.tables, present))
}
