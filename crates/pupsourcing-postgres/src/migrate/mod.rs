//! The PostgreSQL schema: rendered for a configuration, written out by the migration generator
//! or applied from code.

use pupsourcing_core::{SchemaStatus, StoreConfig};
use sqlx::{AssertSqlSafe, PgPool};

use crate::sql::render;

/// The schema SQL for `config`: tables, indexes and the append/allocation/head functions.
/// Every statement is idempotent.
///
/// ```
/// use pupsourcing_core::{SchemaStatus, StoreConfig};
/// let sql = pupsourcing_postgres::migration_sql(&StoreConfig::default().schema("shop").unwrap());
/// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "shop"."events""#));
/// ```
pub fn migration_sql(config: &StoreConfig) -> String {
    render(include_str!("schema.sql"), config)
}

/// Applies [`migration_sql`] in one transaction. Concurrent callers (several processes or tests
/// starting at once) are serialised by an advisory lock, because concurrent `CREATE ... IF NOT
/// EXISTS` of the same object can fail.
///
/// The transaction is sqlx's, not a `BEGIN ... COMMIT` inside the script: a failing statement
/// then rolls it back before its connection returns to the pool (a script's own BEGIN would
/// leave the connection in the aborted transaction, failing every later call that gets it).
pub(crate) async fn apply(pool: &PgPool, config: &StoreConfig) -> Result<(), sqlx::Error> {
    let script =
        format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK});\n{}", migration_sql(config));
    let mut tx = pool.begin().await?;
    if let Err(err) = sqlx::raw_sql(AssertSqlSafe(script)).execute(&mut *tx).await {
        // Roll back now, not on the connection's next use.
        let _ = tx.rollback().await;
        return Err(err);
    }
    tx.commit().await
}

/// Which of the configured tables exist in the configured schema.
pub(crate) async fn status(
    pool: &PgPool,
    config: &StoreConfig,
) -> Result<SchemaStatus, sqlx::Error> {
    let schema = config.schema.as_str();
    let names: Vec<String> =
        sqlx::query_scalar(include_str!("schema_tables.sql")).bind(schema).fetch_all(pool).await?;
    Ok(SchemaStatus::new(schema, &config.tables, |t| names.iter().any(|n| n == t.as_str())))
}

/// Advisory lock key taken while migrating ("pupsourc" in ASCII).
const MIGRATION_LOCK: i64 = 0x7075_7073_6f75_7263;
