//! `pup migrate generate|apply|status` (and `pup migrate-gen`, the reference's name).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::backend::{Backend, OnStore, TableArgs};
use crate::error::CliError;
use crate::output::Table;

#[derive(Subcommand)]
pub enum Migrate {
    /// Write the schema migration SQL for a backend to a file: the event store, DCB commands,
    /// projection checkpoints and dead letters, and the orchestrator's tables. Names come
    /// from --schema, --events-table and the other table flags.
    Generate(Generate),
    /// Create the schema in the database (idempotent: safe to run on every deploy).
    Apply(Apply),
    /// Say which of the store's tables exist (exit code 1 when any is missing).
    Status(MigrateStatus),
}

#[derive(Clone, Copy, ValueEnum)]
enum Adapter {
    Postgres,
    Sqlite,
    Mysql,
}

#[derive(Args)]
pub struct Generate {
    /// Database the SQL is for.
    #[arg(long, value_enum, default_value = "postgres")]
    adapter: Adapter,
    /// Folder to write into (created if missing).
    #[arg(long, default_value = "migrations")]
    output: PathBuf,
    /// File name inside the folder.
    #[arg(long, default_value = "001_pupsourcing.sql")]
    file_name: String,
    /// MySQL: write the file for the `mysql` command-line client (`mysql DB < FILE`), with any
    /// stored procedure between DELIMITER lines (the schema has none at present, so both files
    /// are the same). Without it the file is for tools that send it to the server as one
    /// script (sqlx, golang-migrate with multiStatements), which do not know DELIMITER.
    #[arg(long)]
    mysql_client: bool,
}

impl Generate {
    pub fn run(&self, tables: &TableArgs) -> Result<(), CliError> {
        let config = tables.config()?;
        if self.file_name.is_empty() || self.file_name.contains(['/', '\\']) {
            return Err(CliError::new(format!(
                "--file-name {:?} must be a plain file name",
                self.file_name
            )));
        }
        let sql = match self.adapter {
            _ if self.mysql_client && !matches!(self.adapter, Adapter::Mysql) => {
                return Err(CliError::new("--mysql-client is for --adapter mysql only"));
            }
            Adapter::Postgres => pupsourcing_postgres::migration_sql(&config),
            Adapter::Sqlite => pupsourcing_sqlite::migration_sql(&config),
            Adapter::Mysql if self.mysql_client => pupsourcing_mysql::migration_script(&config),
            Adapter::Mysql => pupsourcing_mysql::migration_sql(&config),
        };
        std::fs::create_dir_all(&self.output)
            .map_err(|e| CliError::new(format!("cannot create {}: {e}", self.output.display())))?;
        let path = self.output.join(&self.file_name);
        std::fs::write(&path, sql)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
        Ok(())
    }
}

#[derive(Args)]
pub struct Apply {}

impl OnStore for Apply {
    const NEEDS_SCHEMA: bool = false;
    const CREATES_DATABASE: bool = true;

    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let before = store.schema().await?;
        store.apply_schema().await?;
        let created = before.missing().count();
        if created == 0 {
            println!("schema already applied in {} (nothing to do)", before.location);
        } else {
            println!("schema applied in {}: {created} table(s) created", before.location);
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct MigrateStatus {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl OnStore for MigrateStatus {
    const NEEDS_SCHEMA: bool = false;

    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let status = store.schema().await?;
        if self.json {
            let tables: Vec<_> = status
                .tables
                .iter()
                .map(|t| json!({ "role": t.role, "name": t.name.as_str(), "present": t.present }))
                .collect();
            let report = json!({
                "location": status.location,
                "applied": status.is_applied(),
                "tables": tables,
            });
            println!("{report}");
        } else {
            let mut table = Table::new(&["TABLE", "NAME", "PRESENT"]);
            for t in &status.tables {
                let present = if t.present { "yes" } else { "no" };
                table.row(vec![t.role.to_string(), t.name.to_string(), present.to_string()]);
            }
            print!("{}", table.render());
            let verdict = if status.is_applied() {
                "applied"
            } else if status.is_empty() {
                "not applied"
            } else {
                "partly applied"
            };
            println!("schema {verdict} in {}", status.location);
        }
        if status.is_applied() {
            Ok(())
        } else {
            Err(CliError::new(format!("the schema is not fully applied in {}", status.location))
                .hint("run `pup migrate apply`"))
        }
    }
}
