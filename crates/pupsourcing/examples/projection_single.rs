//! One projection, one worker: catch up with the log, then follow it.
//!
//! Run with `cargo run --example projection_single`.

mod common;

use std::time::Duration;

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::projection::{CancellationToken, Processor, ProcessorConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&database_file("projection_single")).await?;
    place_orders(&store, 50).await?;
    let totals = OrderTotals::new(&store, "order_totals").await?;

    // Catch up: batches of events past the checkpoint, each applied in one transaction.
    let processor = Processor::new(store.clone(), totals, ProcessorConfig::default())?;
    let handled = processor.run_until_caught_up().await?;
    println!("caught up: {handled} events handled");

    // Follow the log: the processor keeps running while more orders arrive.
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { processor.run(shutdown).await }
    });
    place_orders(&store, 10).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel(); // finishes the batch in hand, then returns
    running.await??;

    report(&store, &OrderTotals::new(&store, "order_totals").await?, 60).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
