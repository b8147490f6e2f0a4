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
struct Noop {
    name: String,
    scope: Scope,
    handled: Arc<AtomicU64>,
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
    let projection = Arc::new(Noop { name, scope, handled: handled.clone() });
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
