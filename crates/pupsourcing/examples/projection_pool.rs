//! A worker pool in one process: four partitions of one projection run side by side.
//!
//! Run with `cargo run --example projection_pool`.

mod common;

use std::time::Duration;

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::projection::{CancellationToken, ProcessorConfig, Runner, status};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&database_file("projection_pool")).await?;
    place_orders(&store, 40).await?;
    let totals = OrderTotals::new(&store, "order_totals").await?;

    let shutdown = CancellationToken::new();
    let config = ProcessorConfig::default().poll_interval(Duration::from_millis(20));
    let runner = Runner::new(store.clone()).partitions(totals, 4, config)?;
    let running = tokio::spawn(runner.run(shutdown.clone()));

    // Wait until every partition has caught up, as an operator's health check would.
    loop {
        let partitions = status(&store, &[]).await?;
        if partitions.len() == 4 && partitions.iter().all(|p| p.lag_events == 0) {
            for p in &partitions {
                println!(
                    "{} {}: checkpoint {}, lag {}",
                    p.projection, p.partition, p.checkpoint, p.lag_events
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running.await?.into_result()?;
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
