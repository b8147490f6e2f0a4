//! `pup bench`: the workloads of `pupsourcing-bench` (one code base: its library), with
//! progress bars on standard error and the table as text, `--json` or `--markdown`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pupsourcing_bench::{Launcher, Progress};

use crate::backend::{DatabaseArgs, Scheme, url};
use crate::error::CliError;

/// Run the benchmark workloads on a PostgreSQL or MySQL/MariaDB database, each beside the
/// raw-SQL floor that writes or reads the same rows, and print events/s, p50/p99 latencies
/// and the ratios. PostgreSQL: appends, conditional appends, decisions, reads, projections,
/// the orchestrator; MySQL: appends (plain, stream lifecycles, conditional) and the catch-up
/// read. Works in schemas (MySQL: databases) of its own, dropped at the end. See
/// docs/benchmarks.md for what each workload means; build with --release for meaningful
/// numbers.
#[derive(Args)]
pub struct Bench {
    #[command(flatten)]
    args: pupsourcing_bench::Args,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the report as Markdown (the format of docs/benchmarks.md).
    #[arg(long)]
    markdown: bool,
}

impl Bench {
    pub fn run(self, db: &DatabaseArgs) -> Result<(), CliError> {
        let url = url(db)?.to_string();
        // The bench library picks the workloads from the URL's scheme; it has none for SQLite.
        if Scheme::of(&url)? == Scheme::Sqlite {
            return Err(CliError::new(
                "pup bench runs on PostgreSQL and MySQL/MariaDB, not SQLite: it has no SQLite \
                 workloads or raw-SQL floors",
            )
            .hint("pass a postgres:// or mysql:// URL"));
        }
        let mut args = self.args;
        args.url = url.clone();
        let runtime = tokio::runtime::Runtime::new()
            .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
        if args.is_worker() {
            return runtime
                .block_on(pupsourcing_bench::worker(&args))
                .map_err(|e| CliError::new(format!("bench worker: {e}")));
        }
        // Worker processes are `pup bench` again, on the same database.
        args.launcher =
            Launcher { program: None, args: vec![format!("--database-url={url}"), "bench".into()] };
        let bars = Bars::default();
        let report = runtime.block_on(pupsourcing_bench::run(&args, &bars));
        bars.clear();
        let report = report.map_err(|e| CliError::new(format!("benchmark failed: {e}")))?;
        if self.json {
            println!("{}", report.json());
        } else if self.markdown {
            print!("{}", report.markdown());
        } else {
            print!("{}", report.text());
        }
        Ok(())
    }
}

/// One progress bar per phase: a bar filling over the phase's expected duration, or a
/// spinner when it is not known. Hidden when standard error is not a terminal.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn clear(&self) {
        if let Some(bar) = self.current.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn start(&self, phase: &str, expected: Option<Duration>) {
        self.clear();
        let bar = match expected {
            Some(expected) => {
                let bar = ProgressBar::new(expected.as_millis() as u64);
                let style = ProgressStyle::with_template("{msg} [{bar:30}] {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> ");
                bar.set_style(style);
                let ticker = bar.clone();
                let started = Instant::now();
                // Time drives the bar: a phase measures for a fixed duration.
                std::thread::spawn(move || {
                    while !ticker.is_finished() {
                        ticker.set_position(started.elapsed().as_millis() as u64);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                });
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(100));
                bar
            }
        };
        bar.set_message(phase.to_string());
        *self.current.lock().expect("not poisoned") = Some(bar);
    }

    fn line(&self, text: &str) {
        let current = self.current.lock().expect("not poisoned");
        match current.as_ref() {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}
