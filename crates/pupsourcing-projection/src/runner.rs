//! [`Runner`]: several projections and partitions in one process.

use std::sync::Arc;

use pupsourcing_core::ValidationError;
use pupsourcing_core::projection::{Partition, ProjectionStore};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ProcessorConfig;
use crate::error::ProjectionError;
use crate::processor::Processor;
use crate::projection::{Projection, SharedProjection};

/// Runs many processors in one process: several projections, each with its own settings,
/// and any number of partitions of each.
///
/// ```no_run
/// # async fn demo<S: pupsourcing_core::projection::ProjectionStore>(
/// #     store: S, orders: impl pupsourcing_projection::Projection<S>,
/// #     emails: impl pupsourcing_projection::Projection<S>) -> Result<(), pupsourcing_projection::ProjectionError> {
/// use pupsourcing_projection::{CancellationToken, ProcessorConfig, Runner};
///
/// let shutdown = CancellationToken::new();
/// let report = Runner::new(store)
///     .partitions(orders, 4, ProcessorConfig::default())?   // 4 partitions in this process
///     .projection(emails, ProcessorConfig::default().batch_size(50))?
///     .run(shutdown.clone())
///     .await;
/// report.into_result()
/// # }
/// ```
pub struct Runner<S: ProjectionStore> {
    store: S,
    processors: Vec<Processor<S>>,
    stop_all_on_error: bool,
    wake: Option<watch::Receiver<()>>,
}

/// How each processor of a [`Runner`] ended.
#[derive(Debug)]
pub struct RunnerReport {
    /// One entry per processor: projection, partition, outcome.
    pub results: Vec<(String, Partition, Result<(), ProjectionError>)>,
}

impl RunnerReport {
    /// Whether every processor ended without an error.
    pub fn is_ok(&self) -> bool {
        self.results.iter().all(|(_, _, r)| r.is_ok())
    }

    /// The first error, if any processor failed.
    pub fn into_result(self) -> Result<(), ProjectionError> {
        self.results.into_iter().try_for_each(|(_, _, r)| r)
    }
}

impl<S: ProjectionStore> Runner<S> {
    /// An empty runner on `store`.
    pub fn new(store: S) -> Self {
        Self { store, processors: Vec::new(), stop_all_on_error: false, wake: None }
    }

    /// Adds one processor of `projection`, for the partition in `config` (by default the
    /// single partition: every event). Run the same binary N times with partition `k` of N
    /// to spread a projection over N processes.
    pub fn projection(
        self,
        projection: impl Projection<S>,
        config: ProcessorConfig,
    ) -> Result<Self, ProjectionError> {
        self.add(Arc::new(projection), [config])
    }

    /// Adds `count` processors of `projection`, one per partition (a worker pool in this
    /// process); `config.partition` is ignored.
    pub fn partitions(
        self,
        projection: impl Projection<S>,
        count: u32,
        config: ProcessorConfig,
    ) -> Result<Self, ProjectionError> {
        if count == 0 {
            return Err(ValidationError::InvalidPartition { key: 0, count: 0 }.into());
        }
        let configs = Partition::every(count).map(|p| config.clone().partition(p));
        self.add(Arc::new(projection), configs)
    }

    /// Whether one processor's failure stops all the others (default: no; they keep running
    /// and the failure is in the report).
    pub fn stop_all_on_error(mut self, stop: bool) -> Self {
        self.stop_all_on_error = stop;
        self
    }

    /// Wakes idle processors when `wake` changes (see [`Processor::wake_on`]).
    pub fn wake_on(mut self, wake: watch::Receiver<()>) -> Self {
        self.wake = Some(wake);
        self
    }

    fn add(
        mut self,
        projection: SharedProjection<S>,
        configs: impl IntoIterator<Item = ProcessorConfig>,
    ) -> Result<Self, ProjectionError> {
        for config in configs {
            let processor = Processor::shared(self.store.clone(), projection.clone(), config)?;
            self.check_unique(&processor)?;
            self.processors.push(processor);
        }
        Ok(self)
    }

    /// Refuses a second processor of one projection and partition, and one projection split
    /// into two different partition counts (their checkpoints would disagree).
    fn check_unique(&self, new: &Processor<S>) -> Result<(), ProjectionError> {
        let partition = new.config().partition;
        for old in self.processors.iter().filter(|p| p.name() == new.name()) {
            let reason = if old.config().partition == partition {
                format!("projection {:?} partition {partition} is added twice", new.name())
            } else if old.config().partition.count() != partition.count() {
                format!(
                    "projection {:?} is split into {} and into {} partitions",
                    new.name(),
                    old.config().partition.count(),
                    partition.count()
                )
            } else {
                continue;
            };
            return Err(ValidationError::Projection { reason }.into());
        }
        Ok(())
    }

    /// Runs every processor until `shutdown` is cancelled (each finishes its batch in hand)
    /// or until each has stopped, and reports how each ended.
    pub async fn run(self, shutdown: CancellationToken) -> RunnerReport {
        let mut tasks = JoinSet::new();
        for (index, processor) in self.processors.into_iter().enumerate() {
            let processor = match &self.wake {
                Some(wake) => processor.wake_on(wake.clone()),
                None => processor,
            };
            let token = shutdown.clone();
            let id = (processor.name().to_string(), processor.config().partition);
            tasks.spawn(async move { (index, id, processor.run(token).await) });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (index, id, result) = joined.unwrap_or_else(|e| {
                std::panic::resume_unwind(
                    e.try_into_panic().unwrap_or_else(|_| Box::new("processor task cancelled")),
                )
            });
            if result.is_err() && self.stop_all_on_error {
                shutdown.cancel();
            }
            results.push((index, id, result));
        }
        results.sort_by_key(|(index, _, _)| *index);
        RunnerReport { results: results.into_iter().map(|(_, (n, p), r)| (n, p, r)).collect() }
    }

    /// Runs every processor until it has caught up with the head, one after the other, and
    /// returns how many events they handled in all (for scripts, tests and rebuilds).
    pub async fn run_until_caught_up(&self) -> Result<u64, ProjectionError> {
        let mut handled = 0;
        for processor in &self.processors {
            handled += processor.run_until_caught_up().await?;
        }
        Ok(handled)
    }
}
