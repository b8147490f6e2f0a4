//! `pup`: the pupsourcing command line.
//!
//! ```text
//! pup migrate generate --adapter postgres --output migrations --schema billing
//! pup migrate apply --database-url postgres://postgres@127.0.0.1/app
//! pup status --check --max-lag 1000
//! pup tail --from 1 --event-type OrderPlaced --json
//! ```
//!
//! The database URL comes from `--database-url` or `DATABASE_URL`; its scheme picks the
//! backend (`backend.rs`). One module per subcommand under `commands/`.

#![warn(missing_docs)]

mod backend;
mod commands;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            err.exit_code()
        }
    }
}
