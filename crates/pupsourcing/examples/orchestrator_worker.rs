//! An orchestrator worker: runs two projections (order totals, orders per customer) on the
//! shards the orchestrator gives it, beside every other worker started the same way on the same
//! database, until Ctrl-C; then it drains (finishes the batches in hand, releases its shards)
//! and exits. No partition settings: start as many as you like, stop any of them.
//!
//! Run with `cargo run --example orchestrator_worker`: without arguments it places orders,
//! starts itself three times as worker processes (`PUP_EXAMPLE_WORKER=1`, which works like
//! `--worker`), places more orders while they run, and checks the read models once the workers
//! have projected every order and stopped.
//!
//! By hand, in as many terminals as you like (each worker runs until Ctrl-C):
//! `cargo run --example orchestrator_worker -- --worker`, and in another terminal
//! `cargo run --example orchestrator_worker -- --place 100` to place orders. Both use
//! `PUP_EXAMPLE_DB` if set, else `pupsourcing_orchestrator_workers.db` in the temp directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{OrderTotals, database_file, open_store, place_orders, report};
use pupsourcing::RecordedEvent;
use pupsourcing::orchestrator::{CoordinationStore, Orchestrator, Recreate};
use pupsourcing::projection::{
    CancellationToken, HandlerError, ProcessorConfig, Projection, Scope,
};
use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::sqlx::{self, SqliteConnection};

const WORKERS: usize = 3;
/// Orders placed before the workers start, and as many again while they run.
const ORDERS: usize = 20;

/// Arguments that make this executable run `main` again: none for the example binary; for its
/// test binary (`cargo test`), the test that calls `main`.
const SELF_ARGS: &[&str] =
    if cfg!(test) { &["tests::the_example_runs", "--exact", "--nocapture"] } else { &[] };

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let place = args.iter().position(|a| a == "--place").and_then(|at| args.get(at + 1));
    if let Some(orders) = place {
        let store = open_store(&shared_database()).await?;
        place_orders(&store, orders.parse()?).await?;
        println!("placed {orders} orders");
        return Ok(());
    }
    let worker = args.iter().any(|a| a == "--worker")
        || std::env::var("PUP_EXAMPLE_WORKER").is_ok_and(|v| v == "1");
    if worker { run_worker().await } else { demo().await }
}

/// The database of workers started by hand: `PUP_EXAMPLE_DB`, else a file in the temp
/// directory (kept: every worker and `--place` use it).
fn shared_database() -> PathBuf {
    std::env::var("PUP_EXAMPLE_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("pupsourcing_orchestrator_workers.db"))
}

/// One worker: runs until Ctrl-C or, when `PUP_EXAMPLE_ORDERS` is set (the demo), until both
/// read models hold that many orders.
async fn run_worker() -> Result<(), Error> {
    let store = open_store(&shared_database()).await?;
    let orchestrator = Orchestrator::builder(store.clone())
        // Short, for a demo that runs in seconds; the defaults are 5 s and 30 s.
        .strategy(
            Recreate::default()
                .heartbeat_interval(Duration::from_millis(500))
                .stale_threshold(Duration::from_secs(5)),
        )
        .projection(OrderTotals::new(&store, "order_totals").await?, ProcessorConfig::default())
        .projection(CustomerOrders::new(&store).await?, ProcessorConfig::default())
        .build()?;
    let id = orchestrator.worker_id().to_string();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    if let Some(orders) = std::env::var("PUP_EXAMPLE_ORDERS").ok().and_then(|n| n.parse().ok()) {
        tokio::spawn(stop_when_projected(store, id.clone(), orders, shutdown.clone()));
    }
    println!("worker {id}: running");
    orchestrator.run(shutdown).await?;
    println!("worker {id}: drained and stopped");
    Ok(())
}

/// Cancels `shutdown` once both read models hold `orders` orders, saying how many shards the
/// worker `id` owns then.
async fn stop_when_projected(
    store: SqliteEventStore,
    id: String,
    orders: i64,
    shutdown: CancellationToken,
) {
    loop {
        if projected(&store)
            .await
            .is_ok_and(|(totals, customers)| totals == orders && customers == orders)
        {
            let shards = store.shards().await.unwrap_or_default();
            let mine = shards.iter().filter(|s| s.owner.as_deref() == Some(id.as_str())).count();
            println!(
                "worker {id}: every order projected; it owns {mine} of {} shards",
                shards.len()
            );
            shutdown.cancel();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Orders in the order totals, and orders counted per customer.
async fn projected(store: &SqliteEventStore) -> Result<(i64, i64), Error> {
    let (totals, _, _) = OrderTotals::new(store, "order_totals").await?.summary(store).await?;
    let customers = CustomerOrders::new(store).await?.orders(store).await?;
    Ok((totals, customers))
}

/// Places orders, starts the worker processes, places more, waits for them, checks.
async fn demo() -> Result<(), Error> {
    let path = database_file("orchestrator_worker");
    let store = open_store(&path).await?;
    place_orders(&store, ORDERS).await?;
    let mut workers: Vec<Worker> =
        (0..WORKERS).map(|_| spawn_worker(&path).map(Worker)).collect::<Result<_, _>>()?;
    place_orders(&store, ORDERS).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for worker in &mut workers {
        let status = loop {
            if let Some(status) = worker.0.try_wait()? {
                break status;
            }
            assert!(Instant::now() < deadline, "the workers did not finish within a minute");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "a worker failed: {status}");
    }
    report(&store, &OrderTotals::new(&store, "order_totals").await?, 2 * ORDERS).await?;
    let customers = CustomerOrders::new(&store).await?.orders(&store).await?;
    println!("customer_orders: {customers} orders over 7 customers");
    assert_eq!(customers, 2 * ORDERS as i64);
    let shards = store.shards().await?;
    let head = pupsourcing::EventStore::head(&store).await?;
    let unowned = shards.iter().filter(|s| s.owner.is_none()).count();
    println!("{} shards, {unowned} unowned after the workers drained (head {head})", shards.len());
    Ok(())
}

/// This executable as a worker process on the database `path`.
fn spawn_worker(path: &Path) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(SELF_ARGS)
        .env("PUP_EXAMPLE_WORKER", "1")
        .env("PUP_EXAMPLE_DB", path)
        .env("PUP_EXAMPLE_ORDERS", (2 * ORDERS).to_string())
        .spawn()
}

/// A worker process, killed if still running when dropped (a failed demo leaves none behind).
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A projection counting orders per customer in table `customer_orders`.
struct CustomerOrders;

impl CustomerOrders {
    async fn new(store: &SqliteEventStore) -> pupsourcing::Result<Self> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS customer_orders \
             (customer TEXT PRIMARY KEY, orders INTEGER NOT NULL)",
        )
        .execute(store.pool())
        .await
        .map_err(pupsourcing::Error::database)?;
        Ok(Self)
    }

    /// Orders counted over every customer.
    async fn orders(&self, store: &SqliteEventStore) -> pupsourcing::Result<i64> {
        sqlx::query_scalar("SELECT coalesce(sum(orders), 0) FROM customer_orders")
            .fetch_one(store.pool())
            .await
            .map_err(pupsourcing::Error::database)
    }
}

impl Projection<SqliteEventStore> for CustomerOrders {
    fn name(&self) -> &str {
        "customer_orders"
    }

    fn scope(&self) -> Scope {
        Scope::all().event_types(["OrderPlaced"])
    }

    async fn handle(
        &self,
        conn: &mut SqliteConnection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let placed = event.json::<serde_json::Value>()?;
        let customer = placed["customer"].as_str().unwrap_or("unknown").to_string();
        sqlx::query(
            "INSERT INTO customer_orders VALUES (?1, 1) \
             ON CONFLICT (customer) DO UPDATE SET orders = orders + 1",
        )
        .bind(customer)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut SqliteConnection) -> Result<(), HandlerError> {
        sqlx::query("DELETE FROM customer_orders").execute(&mut *conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().expect("the example runs");
    }
}
