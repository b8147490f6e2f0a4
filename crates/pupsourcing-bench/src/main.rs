//! `pupsourcing-bench`: the benchmark library's workloads on a PostgreSQL database, the table
//! printed as text and Markdown. `pup bench` runs the same workloads with progress bars.
//!
//! ```text
//! cargo run --release -p pupsourcing-bench -- [--url URL] [--seconds N] [--read-events N]
//! ```

use clap::Parser;
use pupsourcing_bench::{Args, BoxError, Launcher, LogProgress};

/// Benchmarks the pupsourcing PostgreSQL store against a raw-SQL floor.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "PUP_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    url: String,
    #[command(flatten)]
    args: Args,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    let mut args = cli.args;
    args.url = cli.url;
    if args.is_worker() {
        return pupsourcing_bench::worker(&args).await;
    }
    // Worker processes are this binary again, with the same URL.
    args.launcher = Launcher { program: None, args: vec![format!("--url={}", args.url)] };
    let report = pupsourcing_bench::run(&args, &LogProgress).await?;
    println!("{}", report.text());
    println!("Markdown:\n\n{}", report.markdown());
    Ok(())
}
