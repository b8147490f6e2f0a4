//! Scaling a projection from 1 to N partitions without downtime: a partition's checkpoint
//! belongs to its partition count, so a new count means a new projection. Run `order_totals_v2`
//! with 4 partitions beside `order_totals_v1` (1 partition), let it catch up while v1 keeps
//! serving, then switch readers to v2 and drop v1.
//!
//! Run with `cargo run --example projection_scaling`.

mod common;

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::projection::{ProcessorConfig, Runner, reset, status};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&database_file("projection_scaling")).await?;
    place_orders(&store, 30).await?;

    // Today: one partition.
    let v1 = OrderTotals::new(&store, "order_totals_v1").await?;
    Runner::new(store.clone())
        .projection(v1, ProcessorConfig::default())?
        .run_until_caught_up()
        .await?;

    // More orders arrive; v2 starts from position 0 with 4 partitions, v1 keeps running.
    place_orders(&store, 20).await?;
    let v1 = OrderTotals::new(&store, "order_totals_v1").await?;
    let v2 = OrderTotals::new(&store, "order_totals_v2").await?;
    Runner::new(store.clone())
        .projection(v1, ProcessorConfig::default())?
        .partitions(v2, 4, ProcessorConfig::default())?
        .run_until_caught_up()
        .await?;

    // Switch when v2 has no lag; then retire v1 (its reset hook clears its table).
    let lagging = status(&store, &[]).await?.into_iter().filter(|s| s.lag_events > 0).count();
    println!("partitions with lag: {lagging}");
    let v2 = OrderTotals::new(&store, "order_totals_v2").await?;
    report(&store, &v2, 50).await?;
    reset(&store, &OrderTotals::new(&store, "order_totals_v1").await?).await?;
    println!("readers now use order_totals_v2; order_totals_v1 is cleared");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
