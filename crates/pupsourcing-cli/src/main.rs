//! `pup`: the pupsourcing command line.
//!
//! ```text
//! pup migrate-gen --adapter postgres --output migrations --schema billing
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pupsourcing_core::StoreConfig;

#[derive(Parser)]
#[command(name = "pup", version, about = "pupsourcing command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the schema migration SQL for a backend to a file.
    MigrateGen(MigrateGen),
}

#[derive(Clone, Copy, ValueEnum)]
enum Adapter {
    Postgres,
    Sqlite,
}

#[derive(clap::Args)]
struct MigrateGen {
    /// Database the SQL is for.
    #[arg(long, value_enum, default_value = "postgres")]
    adapter: Adapter,
    /// Folder to write into (created if missing).
    #[arg(long, default_value = "migrations")]
    output: PathBuf,
    /// File name inside the folder.
    #[arg(long, default_value = "001_pupsourcing.sql")]
    file_name: String,
    /// Schema holding the tables (PostgreSQL only).
    #[arg(long, default_value = "public")]
    schema: String,
    /// Name of the events table.
    #[arg(long, default_value = "events")]
    events_table: String,
    /// Name of the aggregate heads table.
    #[arg(long, default_value = "aggregate_heads")]
    aggregate_heads_table: String,
}

fn main() -> ExitCode {
    let Command::MigrateGen(args) = Cli::parse().command;
    match migrate_gen(&args) {
        Ok(path) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn migrate_gen(args: &MigrateGen) -> Result<PathBuf, String> {
    let config = StoreConfig::default()
        .schema(&args.schema)
        .and_then(|c| c.events_table(&args.events_table))
        .and_then(|c| c.aggregate_heads_table(&args.aggregate_heads_table))
        .map_err(|e| e.to_string())?;
    if args.file_name.is_empty() || args.file_name.contains(['/', '\\']) {
        return Err(format!("--file-name {:?} must be a plain file name", args.file_name));
    }
    let sql = match args.adapter {
        Adapter::Postgres => pupsourcing_postgres::migration_sql(&config),
        Adapter::Sqlite => pupsourcing_sqlite::migration_sql(&config),
    };
    std::fs::create_dir_all(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    let path = args.output.join(&args.file_name);
    std::fs::write(&path, sql).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
