//! Projection catch-up: a no-op projection over the loaded log with 1, 2 and 4 partitions
//! (processors running at once), and a projection scoped to 1% of the log, beside the raw
//! read floor of the same rows (`read::floor`) measured in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pupsourcing_core::RecordedEvent;
use pupsourcing_core::projection::{Partition, Scope};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_projection::{HandlerError, Processor, ProcessorConfig, Projection};
use sqlx::PgConnection;

use crate::BoxError;
use crate::report::Measurement;

/// The event type of 1% of the loaded log (see `Fixture::seed`).
pub const RARE_TYPE: &str = "OrderRefunded";

/// A projection that only counts what it is given: the cost measured is the processor's.
pub struct Noop {
    name: String,
    scope: Scope,
    handled: Arc<AtomicU64>,
}

impl Noop {
    /// A projection named `name` over `scope` that adds every event it is given to `handled`.
    pub fn new(name: String, scope: Scope, handled: Arc<AtomicU64>) -> Self {
        Self { name, scope, handled }
    }
}

impl Projection<PgEventStore> for Noop {
    fn name(&self) -> &str {
        &self.name
    }

    fn scope(&self) -> Scope {
        self.scope.clone()
    }

    async fn handle(&self, _: &mut PgConnection, _: &RecordedEvent) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn handle_batch(
        &self,
        _: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        self.handled.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Catches a fresh projection up with the whole log in `partitions` processors at once,
/// batches of `batch` events; `scope` as given. Returns the events handled and the time.
pub async fn catch_up(
    store: &PgEventStore,
    partitions: u32,
    scope: Scope,
    batch: usize,
) -> Result<Measurement, BoxError> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let handled = Arc::new(AtomicU64::new(0));
    let projection = Arc::new(Noop::new(name, scope, handled.clone()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for partition in Partition::every(partitions) {
        let config = ProcessorConfig::default().batch_size(batch).partition(partition);
        let processor = Processor::new(store.clone(), projection.clone(), config)?;
        tasks.spawn(async move { processor.run_until_caught_up().await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = started.elapsed();
    Ok(Measurement { events: handled.load(Ordering::Relaxed), elapsed, latencies: Vec::new() })
}

/// The event type of the latency probes.
const PROBE_TYPE: &str = "LatencyProbe";

/// Records, per probe event, the time from the start of its append to its handling.
struct Timer {
    started: Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, Instant>>>,
    latencies: Arc<std::sync::Mutex<Vec<std::time::Duration>>>,
}

impl Projection<PgEventStore> for Timer {
    fn name(&self) -> &str {
        "bench_latency"
    }

    fn scope(&self) -> Scope {
        Scope::all().event_types([PROBE_TYPE])
    }

    async fn handle(
        &self,
        _: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let now = Instant::now();
        if let Some(t0) = self.started.lock().unwrap().get(&event.event_id) {
            self.latencies.lock().unwrap().push(now - *t0);
        }
        Ok(())
    }
}

/// Append-to-handled latency: probe events appended at a steady `rate` per second for
/// `duration` (each append in its own task, so a slow one does not delay the next), handled by
/// a processor woken by NOTIFY (`wake`) or only polling every 200 ms (the default interval).
/// Latency runs from the start of each append to its handling.
pub async fn latency(
    store: &PgEventStore,
    wake: bool,
    rate: u32,
    duration: std::time::Duration,
) -> Result<Measurement, BoxError> {
    use std::time::Duration;
    let started = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let timer = Timer { started: started.clone(), latencies: latencies.clone() };
    let mut processor = Processor::new(store.clone(), timer, ProcessorConfig::default())?;
    if wake {
        processor = processor.wake_on(store.wakeups().await?);
    }
    processor.run_until_caught_up().await?;
    let shutdown = pupsourcing_projection::CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { processor.run(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let end = Instant::now() + duration;
    let mut appends = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while Instant::now() < end {
        ticks.tick().await;
        let event = pupsourcing_core::NewEvent::new(PROBE_TYPE, b"{}".to_vec());
        started.lock().unwrap().insert(event.event_id, Instant::now());
        let store = store.clone();
        appends.spawn(async move {
            let stream = pupsourcing_core::StreamId::new("Probe", uuid::Uuid::now_v7());
            let any = pupsourcing_core::ExpectedVersion::Any;
            pupsourcing_core::EventStore::append(&store, &stream, any, &[event]).await
        });
        sent += 1;
    }
    while let Some(done) = appends.join_next().await {
        done??;
    }
    // Let the last probes be handled.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (latencies.lock().unwrap().len() as u64) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await??;
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    if (latencies.len() as u64) < sent {
        return Err(format!("only {} of {sent} probes were handled", latencies.len()).into());
    }
    Ok(Measurement { events: sent, elapsed: duration, latencies })
}
