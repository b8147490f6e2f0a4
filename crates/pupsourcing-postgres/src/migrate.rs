//! The PostgreSQL schema: rendered for a configuration, written out by the migration generator
//! or applied from code.

use pupsourcing_core::StoreConfig;
use sqlx::{AssertSqlSafe, PgPool};

use crate::statements::render;

/// The schema SQL for `config`: tables, indexes and the append/allocation/head functions.
/// Every statement is idempotent.
///
/// ```
/// use pupsourcing_core::StoreConfig;
/// let sql = pupsourcing_postgres::migration_sql(&StoreConfig::default().schema("shop").unwrap());
/// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "shop"."events""#));
/// ```
pub fn migration_sql(config: &StoreConfig) -> String {
    render(include_str!("sql/schema.sql"), config)
}

/// Applies [`migration_sql`] in one transaction. Concurrent callers (several processes or tests
/// starting at once) are serialised by an advisory lock, because concurrent `CREATE ... IF NOT
/// EXISTS` of the same object can fail.
pub(crate) async fn apply(pool: &PgPool, config: &StoreConfig) -> Result<(), sqlx::Error> {
    let script = format!(
        "BEGIN;\nSELECT pg_advisory_xact_lock({MIGRATION_LOCK});\n{}\nCOMMIT;",
        migration_sql(config)
    );
    sqlx::raw_sql(AssertSqlSafe(script)).execute(pool).await?;
    Ok(())
}

/// Advisory lock key taken while migrating ("pupsourc" in ASCII).
const MIGRATION_LOCK: i64 = 0x7075_7073_6f75_7263;
