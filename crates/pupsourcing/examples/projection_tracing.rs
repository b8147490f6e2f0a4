//! Projections with tracing: the processor logs its start, stop and errors as `tracing`
//! events and each batch as a span (projection, partition, from, to, count). Here a
//! `tracing-subscriber` prints them; without a subscriber they cost nothing.
//!
//! Run with `RUST_LOG=debug cargo run --example projection_tracing`.

mod common;

use std::time::Duration;

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::projection::{CancellationToken, Processor, ProcessorConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "pupsourcing_projection=debug".into()),
        )
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();

    let store = open_store(&database_file("projection_tracing")).await?;
    place_orders(&store, 10).await?;
    let totals = OrderTotals::new(&store, "order_totals").await?;
    let processor =
        Processor::new(store.clone(), totals, ProcessorConfig::default().batch_size(15))?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { processor.run(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    running.await??;
    report(&store, &OrderTotals::new(&store, "order_totals").await?, 10).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
