//! `pup`: the pupsourcing command line.
//!
//! ```text
//! pup migrate generate --adapter postgres --output migrations --schema billing
//! pup migrate-gen --adapter postgres --output migrations --schema billing   # the same
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
    /// Schema migrations.
    #[command(subcommand)]
    Migrate(Migrate),
    /// Write the schema migration SQL for a backend to a file (`pup migrate generate`).
    MigrateGen(MigrateGen),
}

#[derive(Subcommand)]
enum Migrate {
    /// Write the schema migration SQL for a backend to a file: the event store, DCB commands,
    /// projection checkpoints and dead letters, and the orchestrator's tables.
    Generate(MigrateGen),
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
    /// Name of the events table (at most 44 bytes, so that names derived from it fit).
    #[arg(long, default_value = "events")]
    events_table: String,
    /// Name of the aggregate heads table [default: `aggregate_heads` for the events table
    /// `events`, `<events>_heads` otherwise, as `StoreConfig::events_table` names it].
    #[arg(long)]
    aggregate_heads_table: Option<String>,
    /// Name of the DCB commands table [default: `commands` for the events table `events`,
    /// `<events>_commands` otherwise].
    #[arg(long)]
    commands_table: Option<String>,
    /// Name of the projection checkpoints table [default: `projection_checkpoints` for the
    /// events table `events`, `<events>_checkpoints` otherwise].
    #[arg(long)]
    checkpoints_table: Option<String>,
    /// Name of the projection dead letters table [default: `projection_dead_letters` for the
    /// events table `events`, `<events>_dead_letters` otherwise].
    #[arg(long)]
    dead_letters_table: Option<String>,
    /// Name of the orchestrator workers table [default: `workers` for the events table
    /// `events`, `<events>_workers` otherwise].
    #[arg(long)]
    workers_table: Option<String>,
    /// Name of the orchestrator shards table [default: `projection_shards` for the events
    /// table `events`, `<events>_shards` otherwise].
    #[arg(long)]
    projection_shards_table: Option<String>,
    /// Name of the orchestrator recreate lock table [default: `recreate_lock` for the events
    /// table `events`, `<events>_recreate_lock` otherwise].
    #[arg(long)]
    recreate_lock_table: Option<String>,
}

fn main() -> ExitCode {
    let args = match Cli::parse().command {
        Command::Migrate(Migrate::Generate(args)) | Command::MigrateGen(args) => args,
    };
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
    // The events table first: the other tables default to names derived from it, exactly as a
    // store configured with the same setters names them.
    let mut config = StoreConfig::default()
        .schema(&args.schema)
        .and_then(|c| c.events_table(&args.events_table))
        .map_err(|e| e.to_string())?;
    if let Some(name) = &args.aggregate_heads_table {
        config = config.aggregate_heads_table(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.commands_table {
        config = config.commands_table(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.checkpoints_table {
        config = config.checkpoints_table(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.dead_letters_table {
        config = config.dead_letters_table(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.workers_table {
        config = config.workers_table(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.projection_shards_table {
        config = config.shards_table(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.recreate_lock_table {
        config = config.recreate_lock_table(name).map_err(|e| e.to_string())?;
    }
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
