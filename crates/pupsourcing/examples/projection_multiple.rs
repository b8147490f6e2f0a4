//! Several projections in one runner, each with its own settings: order totals in batches of
//! 500, and a count of events per type in batches of 10.
//!
//! Run with `cargo run --example projection_multiple`.

mod common;

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::RecordedEvent;
use pupsourcing::projection::{HandlerError, ProcessorConfig, Projection, Runner};
use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::sqlx::{self, SqliteConnection};

/// Counts events per type in table `event_counts`.
struct EventCounts;

impl Projection<SqliteEventStore> for EventCounts {
    fn name(&self) -> &str {
        "event_counts"
    }

    async fn handle(
        &self,
        conn: &mut SqliteConnection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO event_counts (event_type, n) VALUES (?1, 1) \
             ON CONFLICT (event_type) DO UPDATE SET n = n + 1",
        )
        .bind(&event.event_type)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&database_file("projection_multiple")).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS event_counts (event_type TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    )
    .execute(store.pool())
    .await?;
    place_orders(&store, 30).await?;

    let runner = Runner::new(store.clone())
        .projection(OrderTotals::new(&store, "order_totals").await?, ProcessorConfig::default())?
        .projection(EventCounts, ProcessorConfig::default().batch_size(10))?;
    let handled = runner.run_until_caught_up().await?;
    println!("{handled} events handled by two projections");

    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_type, n FROM event_counts ORDER BY event_type")
            .fetch_all(store.pool())
            .await?;
    println!("event counts: {counts:?}");
    assert_eq!(counts, [("ItemAdded".to_string(), 90), ("OrderPlaced".to_string(), 30)]);
    report(&store, &OrderTotals::new(&store, "order_totals").await?, 30).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
