//! The subcommands, one module each, and the dispatch from the parsed command line.

mod append;
mod bench;
mod completions;
mod dead_letters;
mod migrate;
mod projection;
mod status;
mod tail;

use clap::{Parser, Subcommand};

use crate::backend::{DatabaseArgs, with_store};
use crate::error::CliError;

/// pupsourcing command line: migrations, status, tail, projections, dead letters, appends and
/// benchmarks on PostgreSQL, SQLite and MySQL/MariaDB.
#[derive(Parser)]
#[command(name = "pup", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Schema migrations: generate SQL files, apply the schema, say what is applied.
    #[command(subcommand)]
    Migrate(migrate::Migrate),
    /// Write the schema migration SQL for a backend to a file (`pup migrate generate`).
    MigrateGen(migrate::Generate),
    /// Where every projection, worker and shard stands: checkpoints, lag, errors, stalls.
    Status(status::Status),
    /// Follow the log live, filtered, as readable lines or JSON lines.
    Tail(tail::Tail),
    /// Projection checkpoints: list them, reset a projection.
    #[command(subcommand)]
    Projection(projection::ProjectionCommand),
    /// Events projections set aside: list, replay (write out), discard.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLetters),
    /// Append one event: to a stream (with an expected version) or with tags (DCB).
    Append(append::Append),
    /// Benchmark workloads against a raw-SQL floor on a PostgreSQL or MySQL/MariaDB database.
    Bench(bench::Bench),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Completions),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Migrate(migrate::Migrate::Generate(args)) | Command::MigrateGen(args) => {
            args.run(&cli.db.tables)
        }
        Command::Completions(args) => args.run(),
        Command::Migrate(migrate::Migrate::Apply(args)) => block_on(with_store(&cli.db, args)),
        Command::Migrate(migrate::Migrate::Status(args)) => block_on(with_store(&cli.db, args)),
        Command::Status(args) => block_on(with_store(&cli.db, args)),
        Command::Tail(args) => block_on(with_store(&cli.db, args)),
        Command::Projection(args) => block_on(with_store(&cli.db, args)),
        Command::DeadLetters(args) => block_on(with_store(&cli.db, args)),
        Command::Append(args) => block_on(with_store(&cli.db, args)),
        Command::Bench(args) => args.run(&cli.db),
    }
}

/// Runs `future` on a multi-threaded runtime (the stores spawn tasks of their own).
fn block_on<F: Future<Output = Result<(), CliError>>>(future: F) -> Result<(), CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?
        .block_on(future)
}

/// Asks `question` on the terminal; true on "y" or "yes".
fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(format!("{question}: no terminal to confirm on"))
            .hint("pass --yes to confirm without asking"));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| CliError::new(e.to_string()))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
