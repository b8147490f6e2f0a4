//! One projection partitioned across processes: the same binary runs once per partition,
//! each with `--partition-key K --total-partitions N`, and each handles only its share (every
//! order's events stay in one partition, in order).
//!
//! Run with `cargo run --example projection_partition`: without arguments it places the
//! orders, starts itself four times (partitions 0 to 3, given as `PARTITION_KEY` and
//! `TOTAL_PARTITIONS` environment variables, which work like the flags) and checks the result.

mod common;

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::projection::{Partition, Processor, ProcessorConfig};

const PARTITIONS: u32 = 4;

/// Arguments that make this executable run `main` again: none for the example binary; for its
/// test binary (`cargo test`), the test that calls `main`.
const SELF_ARGS: &[&str] =
    if cfg!(test) { &["tests::the_example_runs", "--exact", "--nocapture"] } else { &[] };

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let setting = |flag: &str, var: &str| {
        let at = args.iter().position(|a| a == flag);
        let given = at.and_then(|at| args.get(at + 1).cloned()).or_else(|| std::env::var(var).ok());
        given?.parse::<u32>().ok()
    };
    let key = setting("--partition-key", "PARTITION_KEY");
    match (key, setting("--total-partitions", "TOTAL_PARTITIONS")) {
        (Some(key), Some(total)) => run_partition(key, total).await,
        _ => coordinate().await,
    }
}

/// One worker process: runs partition `key` of `total` until it has caught up.
async fn run_partition(key: u32, total: u32) -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("PUP_EXAMPLE_DB")?;
    let store = open_store(path.as_ref()).await?;
    let totals = OrderTotals::new(&store, "order_totals").await?;
    let config = ProcessorConfig::default().partition(Partition::new(key, total)?);
    let handled = Processor::new(store, totals, config)?.run_until_caught_up().await?;
    println!("partition {key}/{total}: {handled} events");
    Ok(())
}

/// Places the orders, starts one process per partition, waits for them, checks the totals.
async fn coordinate() -> Result<(), Box<dyn std::error::Error>> {
    let path = database_file("projection_partition");
    let store = open_store(&path).await?;
    place_orders(&store, 40).await?;
    let children: Vec<_> = (0..PARTITIONS)
        .map(|key| {
            std::process::Command::new(std::env::current_exe()?)
                .args(SELF_ARGS)
                .env("PARTITION_KEY", key.to_string())
                .env("TOTAL_PARTITIONS", PARTITIONS.to_string())
                .env("PUP_EXAMPLE_DB", &path)
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut child in children {
        assert!(child.wait()?.success(), "a partition process failed");
    }
    report(&store, &OrderTotals::new(&store, "order_totals").await?, 40).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
