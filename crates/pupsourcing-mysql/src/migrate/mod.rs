//! The schema: generated as SQL text for migration files, or applied by
//! [`crate::MySqlEventStore::migrate`].

use pupsourcing_core::{Identifier, Result, SchemaStatus, SchemaTable, StoreConfig};
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::error::db;
use crate::sql::{
    COUNTER_SUFFIX, LOCKS_SUFFIX, TAGS_SUFFIX, WORKER_LOCKS_SUFFIX, own_database, render,
};

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
/// the orchestrator's (workers, the worker lock rows `<workers>_locks`, shards, the
/// recreate lock, its row at generation 0). Run over a schema of an older version, it creates
/// what that schema lacks and leaves the rest as it is.
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

/// [`migration_sql`] for the `mysql` command-line client (`mysql DB < file.sql`): the same
/// statements, each stored procedure (if any) between `DELIMITER $$` lines. The client splits a
/// script at every `;`, a procedure's body included; the server, which tools that send a file
/// as one multi-statement script rely on (sqlx, [`crate::MySqlEventStore::migrate`]), does
/// not, and does not know `DELIMITER` (a client command): hence two forms of one schema. The
/// schema has no procedure at present (the write procedure of older stores is gone), so the
/// two are the same text.
///
/// ```
/// use pupsourcing_core::StoreConfig;
/// let config = StoreConfig::default();
/// let script = pupsourcing_mysql::migration_script(&config);
/// assert_eq!(script, pupsourcing_mysql::migration_sql(&config));
/// ```
pub fn migration_script(config: &StoreConfig) -> String {
    let mut out = String::new();
    let mut in_procedure = false;
    for line in migration_sql(config).lines() {
        if line.starts_with("CREATE PROCEDURE") || line.starts_with("CREATE FUNCTION") {
            in_procedure = true;
            out.push_str("DELIMITER $$\n");
        }
        // A procedure's body ends with the first unindented `END;` (its inner blocks are
        // indented).
        if in_procedure && line == "END;" {
            in_procedure = false;
            out.push_str("END $$\nDELIMITER ;\n");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    debug_assert!(!in_procedure, "every procedure of the schema ends with an unindented END;");
    out
}

/// Applies the schema. MySQL commits each DDL statement implicitly, so there is no transaction
/// to roll back: every statement is idempotent instead, and a failed migration can simply run
/// again. Concurrent migrations wait for each other on MySQL's metadata locks.
pub(crate) async fn apply(pool: &MySqlPool, config: &StoreConfig) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(db)?;
    sqlx::raw_sql(AssertSqlSafe(migration_sql(config))).execute(&mut *conn).await.map_err(db)?;
    Ok(())
}

/// What the schema creates beyond the configured tables, named after the events table or,
/// for the worker lock rows, the workers table: (role, whether after the workers table,
/// suffix). Appends (or, for the worker lock rows, workers' registrations) fail without any of
/// them, and MySQL's DDL is not transactional, so a migration cut short (or a schema of an
/// older version) can leave some missing: the status checks them too. (The write procedure of
/// older stores is no longer used, so its absence is no gap.)
const DERIVED: [(&str, bool, &str); 4] = [
    ("position counter", false, COUNTER_SUFFIX),
    ("tag index", false, TAGS_SUFFIX),
    ("lock rows", false, LOCKS_SUFFIX),
    ("worker lock rows", true, WORKER_LOCKS_SUFFIX),
];

/// Which of the store's tables (the configured ones, then [`DERIVED`]) exist in its database:
/// `config.schema`, or the connection's for the default `public`. Names too long to derive
/// from (assigned to the configuration's fields directly) are a validation error.
pub(crate) async fn status(pool: &MySqlPool, config: &StoreConfig) -> Result<SchemaStatus> {
    config.validate()?;
    let mut conn = pool.acquire().await.map_err(db)?;
    let database = if own_database(config) {
        Some(config.schema.as_str().to_string())
    } else {
        let name: Option<Vec<u8>> = sqlx::query_scalar(include_str!("connection_database.sql"))
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        name.map(|n| String::from_utf8_lossy(&n).into_owned())
    };
    // No database (a URL naming none, with the default schema): nothing is there.
    let tables: Vec<Vec<u8>> = sqlx::query_scalar(include_str!("objects.sql"))
        .bind(&database)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let exists = |name: &str| tables.iter().any(|n| n == name.as_bytes());
    let location = database.unwrap_or_else(|| "(no database)".to_string());
    let mut status = SchemaStatus::new(location, &config.tables, |t| exists(t.as_str()));
    for (role, of_workers, suffix) in DERIVED {
        let base = if of_workers { &config.tables.workers } else { &config.tables.events };
        let name = format!("{}{suffix}", base.as_str());
        let name = Identifier::new(name).expect("core's length limit covers the derived names");
        let present = exists(name.as_str());
        status.tables.push(SchemaTable { role, name, present });
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's script is the server's SQL with each procedure between DELIMITER lines:
    /// the schema has none, so nothing changes.
    #[test]
    fn the_client_script_only_adds_delimiters() {
        let config = StoreConfig::default().schema("billing").unwrap();
        let sql = migration_sql(&config);
        assert!(!sql.contains("CREATE PROCEDURE"));
        assert_eq!(migration_script(&config), sql);
    }
}
