//! What the projection examples share: a SQLite store in a file, orders to project, and a
//! read model of order totals written by a projection.

#![allow(dead_code)] // each example uses part of it

use std::path::PathBuf;

use pupsourcing::projection::{HandlerError, Projection, Scope};
use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::sqlx::{self, SqliteConnection};
use pupsourcing::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreConfig, StreamId};
use serde_json::json;

/// A database file in the temp directory, named after the example (removed first, so each
/// run starts empty), unless `PUP_EXAMPLE_DB` names one.
pub fn database_file(example: &str) -> PathBuf {
    if let Ok(path) = std::env::var("PUP_EXAMPLE_DB") {
        return path.into();
    }
    let path = std::env::temp_dir().join(format!("pupsourcing_{example}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// Opens (creating it if needed) the store in `path`, with its tables.
pub async fn open_store(path: &std::path::Path) -> pupsourcing::Result<SqliteEventStore> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SqliteEventStore::connect(&url, StoreConfig::default()).await?;
    store.migrate().await?;
    Ok(store)
}

/// Places `orders` orders of three items each: `OrderPlaced` creates the stream (`NoStream`),
/// then the items are appended with the version it must be at (`Exact`).
pub async fn place_orders(store: &SqliteEventStore, orders: usize) -> pupsourcing::Result<()> {
    for n in 0..orders {
        let order = StreamId::new("Order", uuid::Uuid::now_v7());
        let placed = NewEvent::json("OrderPlaced", &json!({ "customer": format!("c{}", n % 7) }))?;
        store.append(&order, ExpectedVersion::NoStream, &[placed]).await?;
        let items: Vec<NewEvent> = (1..=3)
            .map(|i| NewEvent::json("ItemAdded", &json!({ "price": 10 * i })))
            .collect::<Result<_, _>>()?;
        store.append(&order, ExpectedVersion::Exact(1), &items).await?;
    }
    Ok(())
}

/// A projection keeping one row per order in the table named after it: item count and total.
pub struct OrderTotals {
    name: String,
}

impl OrderTotals {
    /// The projection `name`, writing table `name` (created here if missing).
    pub async fn new(store: &SqliteEventStore, name: &str) -> pupsourcing::Result<Self> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {name} (order_id TEXT PRIMARY KEY, \
             items INTEGER NOT NULL, total INTEGER NOT NULL)"
        );
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(store.pool())
            .await
            .map_err(pupsourcing::Error::database)?;
        Ok(Self { name: name.to_string() })
    }

    /// (orders, items, sum of totals) in the read model.
    pub async fn summary(&self, store: &SqliteEventStore) -> pupsourcing::Result<(i64, i64, i64)> {
        let sql = format!(
            "SELECT count(*), coalesce(sum(items), 0), coalesce(sum(total), 0) FROM {}",
            self.name
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .map_err(pupsourcing::Error::database)
    }
}

impl Projection<SqliteEventStore> for OrderTotals {
    fn name(&self) -> &str {
        &self.name
    }

    fn scope(&self) -> Scope {
        Scope::all().aggregate_types(["Order"])
    }

    async fn handle(
        &self,
        conn: &mut SqliteConnection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let Some((order, _version)) = &event.stream else { return Ok(()) };
        let id = order.aggregate_id.to_string();
        let sql = match event.event_type.as_str() {
            "OrderPlaced" => format!("INSERT INTO {} VALUES (?1, 0, 0)", self.name),
            "ItemAdded" => {
                format!(
                    "UPDATE {} SET items = items + 1, total = total + ?2 WHERE order_id = ?1",
                    self.name
                )
            }
            _ => return Ok(()),
        };
        let price = event.json::<serde_json::Value>()?["price"].as_i64().unwrap_or(0);
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(price).execute(&mut *conn).await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut SqliteConnection) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", self.name)))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Prints the read model's summary and checks it against `orders` placed orders.
pub async fn report(
    store: &SqliteEventStore,
    totals: &OrderTotals,
    orders: usize,
) -> pupsourcing::Result<()> {
    let (count, items, sum) = totals.summary(store).await?;
    println!(
        "{}: {count} orders, {items} items, {sum} in all (head {})",
        totals.name,
        store.head().await?
    );
    assert_eq!((count, items, sum), (orders as i64, 3 * orders as i64, 60 * orders as i64));
    Ok(())
}
