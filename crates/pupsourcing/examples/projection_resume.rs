//! Stop and resume: a processor stopped in the middle of the log resumes from its checkpoint
//! and applies every event exactly once.
//!
//! Run with `cargo run --example projection_resume`.

mod common;

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::projection::{Partition, Processor, ProcessorConfig, Progress, ProjectionStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = database_file("projection_resume");
    let store = open_store(&path).await?;
    place_orders(&store, 25).await?;

    // First run: three batches of 10 events, then stop (as if the process were shut down).
    let config = ProcessorConfig::default().batch_size(10);
    let first = Processor::new(
        store.clone(),
        OrderTotals::new(&store, "order_totals").await?,
        config.clone(),
    )?;
    for _ in 0..3 {
        if let Progress::Handled { checkpoint, .. } = first.step().await? {
            println!("batch committed, checkpoint {checkpoint}");
        }
    }
    drop(first);
    store.close().await;

    // Second run, a new store on the same file: it continues from the stored checkpoint.
    let store = open_store(&path).await?;
    let checkpoint = store.checkpoint("order_totals", Partition::all()).await?;
    println!("resuming from checkpoint {}", checkpoint.position);
    let second =
        Processor::new(store.clone(), OrderTotals::new(&store, "order_totals").await?, config)?;
    let handled = second.run_until_caught_up().await?;
    println!("resumed: {handled} more events");
    report(&store, &OrderTotals::new(&store, "order_totals").await?, 25).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
