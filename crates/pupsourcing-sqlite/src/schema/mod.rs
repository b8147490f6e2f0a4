//! The schema: generated as SQL text for migration files, or applied by [`crate::SqliteEventStore::migrate`].

use pupsourcing_core::StoreConfig;

use crate::sql::render;

const SCHEMA: &str = include_str!("schema.sql");

/// The SQL that creates the store's tables and indexes for `config`, every statement idempotent
/// (`CREATE ... IF NOT EXISTS`). Table names come from `config.tables`; SQLite has no schemas,
/// so `config.schema` is ignored.
///
/// ```
/// use pupsourcing_core::StoreConfig;
/// let sql = pupsourcing_sqlite::migration_sql(&StoreConfig::default().events_table("billing_events").unwrap());
/// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "billing_events""#));
/// ```
pub fn migration_sql(config: &StoreConfig) -> String {
    render(SCHEMA, config)
}
