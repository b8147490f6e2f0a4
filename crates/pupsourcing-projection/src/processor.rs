//! [`Processor`]: runs one partition of one projection, exactly once per event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pupsourcing_core::projection::{Batch, ProjectionStore, Scope, validate_projection_name};
use pupsourcing_core::{Limits, Position};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::checkpointing::{Checkpointing, TableCheckpoint};
use crate::config::ProcessorConfig;
use crate::error::ProjectionError;
use crate::pass::{Pass, Passes};
use crate::projection::{Projection, SharedProjection};

/// The longest wait between tries while the database keeps failing.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(30);

/// What one [`Processor::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A batch was handled and its checkpoint committed.
    Handled {
        /// Events handled.
        events: usize,
        /// The checkpoint now.
        checkpoint: Position,
    },
    /// Nothing to handle: the checkpoint is at the gap-free head (moved there past events
    /// out of scope, if there were any).
    CaughtUp {
        /// The checkpoint now.
        checkpoint: Position,
    },
    /// Another processor of the same partition moved the checkpoint first: this batch was
    /// rolled back, nothing of it applied. The next step reads from the new checkpoint.
    Contended,
}

/// Runs one partition of one projection: reads a batch past the checkpoint (filtered in SQL
/// by scope and partition, capped at the gap-free head), handles it in one transaction that
/// also moves the checkpoint by compare-and-set, commits, and repeats.
///
/// No transaction stays open while the processor waits. Two processors of one partition
/// never both apply a batch: the second one's compare-and-set fails and its transaction rolls
/// back ([`Progress::Contended`]).
pub struct Processor<S: ProjectionStore> {
    store: S,
    projection: SharedProjection<S>,
    name: Arc<str>,
    scope: Scope,
    config: ProcessorConfig,
    wake: Option<watch::Receiver<()>>,
    checkpointing: Arc<dyn Checkpointing<S>>,
    stop_at: Option<Position>,
}

impl<S: ProjectionStore> Processor<S> {
    /// A processor of `projection` on `store`. Fails with [`ProjectionError::Invalid`] for an
    /// empty name, an invalid scope or invalid settings.
    pub fn new(
        store: S,
        projection: impl Projection<S>,
        config: ProcessorConfig,
    ) -> Result<Self, ProjectionError> {
        Self::shared(store, Arc::new(projection), config)
    }

    pub(crate) fn shared(
        store: S,
        projection: SharedProjection<S>,
        config: ProcessorConfig,
    ) -> Result<Self, ProjectionError> {
        let name: Arc<str> = projection.name().into();
        validate_projection_name(&name)?;
        config.validate()?;
        let scope = projection.scope();
        scope.validate(&Limits::default())?;
        let checkpointing =
            Arc::new(TableCheckpoint { name: name.clone(), partition: config.partition });
        Ok(Self {
            store,
            projection,
            name,
            scope,
            config,
            wake: None,
            checkpointing,
            stop_at: None,
        })
    }

    /// Wakes the idle processor whenever `wake` changes (for example from a PostgreSQL
    /// `LISTEN` connection), instead of only after the poll interval.
    pub fn wake_on(mut self, wake: watch::Receiver<()>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Keeps the checkpoint in `checkpointing` instead of the checkpoints table (the
    /// orchestrator's fenced shard rows). The partition in the settings still selects the
    /// events.
    pub fn with_checkpointing(mut self, checkpointing: impl Checkpointing<S>) -> Self {
        self.checkpointing = Arc::new(checkpointing);
        self
    }

    /// Handles events up to `position` only: the checkpoint never moves past it, and
    /// [`Processor::run_until_caught_up`] returns once it is there. The orchestrator brings the
    /// shards of a projection to one common position this way before it changes their count.
    pub fn stop_at(mut self, position: Position) -> Self {
        self.stop_at = Some(position);
        self
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings.
    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// Runs until `shutdown` is cancelled (then finishes the batch in hand and returns
    /// `Ok`), or until the poison policy stops it. Database errors are retried with a growing
    /// wait; each retry starts from the stored checkpoint, so a commit whose outcome was lost
    /// is neither applied twice nor skipped.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ProjectionError> {
        let partition = self.config.partition;
        tracing::info!(projection = %self.name, %partition, "projection processor started");
        let mut wake = self.wake.clone();
        let mut cursor = Cursor::stopping_on(shutdown.clone());
        let mut backoff = self.config.error_backoff;
        while !shutdown.is_cancelled() {
            match cursor.step(self).await {
                Ok(Progress::Handled { .. }) => backoff = self.config.error_backoff,
                Ok(Progress::CaughtUp { .. }) => {
                    backoff = self.config.error_backoff;
                    self.idle(&shutdown, wake.as_mut()).await;
                }
                Ok(Progress::Contended) => {
                    tracing::warn!(projection = %self.name, %partition,
                        "another processor moved the checkpoint; re-reading from it");
                    self.idle(&shutdown, wake.as_mut()).await;
                }
                Err(ProjectionError::Store { source, .. }) if retryable(&source) => {
                    tracing::warn!(projection = %self.name, %partition, error = %source,
                        retry_in = ?backoff, "database error; retrying from the checkpoint");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                }
                Err(error) => {
                    tracing::error!(projection = %self.name, %partition, %error,
                        "projection processor stopped");
                    return Err(error);
                }
            }
        }
        tracing::info!(projection = %self.name, %partition, "projection processor stopped");
        Ok(())
    }

    /// Handles batches until one comes back short (the partition has caught up with the head
    /// as it was then), and returns how many events it handled. For tests, scripts and
    /// one-shot rebuilds; [`Processor::run`] keeps following the log.
    pub async fn run_until_caught_up(&self) -> Result<u64, ProjectionError> {
        let mut handled = 0u64;
        let mut cursor = Cursor::default();
        loop {
            match cursor.step(self).await? {
                Progress::Handled { events, .. } => handled += events as u64,
                Progress::CaughtUp { .. } => return Ok(handled),
                Progress::Contended => {}
            }
        }
    }

    /// Handles one batch from the stored checkpoint.
    pub async fn step(&self) -> Result<Progress, ProjectionError> {
        self.step_unless(&CancellationToken::new()).await
    }

    /// [`Processor::step`], but a retry wait of the poison policy ends early when `shutdown`
    /// is cancelled (the batch stays unapplied; the step reports the checkpoint unchanged).
    async fn step_unless(&self, shutdown: &CancellationToken) -> Result<Progress, ProjectionError> {
        let checkpoint = self.checkpointing.load(&self.store).await;
        let from = checkpoint.map_err(|e| self.store_error(e))?;
        Ok(self.step_from(from, None, shutdown).await?.0)
    }

    /// Handles one batch after `from`, the checkpoint as this processor last saw it: `ready`
    /// if it was read already, else a fresh read. While a full batch is applied, the next one
    /// is read at the same time (catch-up overlaps reading with the transaction); it is
    /// returned when the checkpoint moved where that read started.
    async fn step_from(
        &self,
        from: Position,
        ready: Option<Batch>,
        shutdown: &CancellationToken,
    ) -> Result<(Progress, Option<Batch>), ProjectionError> {
        let limit = self.config.batch_size;
        let batch = match ready {
            Some(batch) => batch,
            None => self.read(from).await?,
        };
        let to = batch.end(limit);
        if batch.events.is_empty() && to <= from {
            return Ok((Progress::CaughtUp { checkpoint: from }, None));
        }
        let span = tracing::debug_span!("projection_batch", projection = %self.name,
            partition = %self.config.partition, from, to, count = batch.events.len());
        let started = Instant::now();
        let full = batch.events.len() >= limit;
        let head = batch.head;
        let apply = self.apply(from, batch, shutdown).instrument(span);
        let (progress, next) = if full {
            let (progress, next) = tokio::join!(apply, self.read(to));
            (progress?, next.ok())
        } else {
            (apply.await?, None)
        };
        self.record(&progress, head, started.elapsed());
        let moved_to_end =
            matches!(progress, Progress::Handled { checkpoint, .. } if checkpoint == to);
        Ok((progress, next.filter(|_| moved_to_end)))
    }

    /// Reads the batch after `from`.
    async fn read(&self, from: Position) -> Result<Batch, ProjectionError> {
        let limit = self.config.batch_size;
        let read = self.store.read_batch(&self.scope, self.config.partition, from, limit).await;
        let batch = read.map_err(|e| self.store_error(e))?;
        Ok(match self.stop_at {
            Some(at) => batch.capped(at),
            None => batch,
        })
    }

    /// Applies a batch read after `from` and moves the checkpoint to its end.
    async fn apply(
        &self,
        from: Position,
        batch: Batch,
        shutdown: &CancellationToken,
    ) -> Result<Progress, ProjectionError> {
        let to = batch.end(self.config.batch_size);
        let passes = Passes { processor: self, from, to, events: &batch.events, shutdown };
        let handled = match passes.run(self.config.poison).await? {
            Pass::Committed => batch.events.len(),
            Pass::Moved => return Ok(Progress::Contended),
            // Only `run` cancels: it stops next, leaving the batch for the next start.
            Pass::Interrupted => return Ok(Progress::CaughtUp { checkpoint: from }),
            Pass::Failed { .. } => unreachable!("Passes::run resolves failures"),
        };
        if handled == 0 {
            return Ok(Progress::CaughtUp { checkpoint: to });
        }
        Ok(Progress::Handled { events: handled, checkpoint: to })
    }

    /// Metrics of a finished batch (no-ops without a recorder): events handled, batch
    /// duration, and the lag in positions (head minus checkpoint: an upper bound of the events
    /// still to handle; `status` counts them exactly).
    fn record(&self, progress: &Progress, head: Position, elapsed: Duration) {
        if let Progress::Handled { events, checkpoint } = progress {
            let labels = [
                ("projection", self.name.to_string()),
                ("partition", self.config.partition.to_string()),
            ];
            metrics::counter!("pupsourcing_projection_events_handled_total", &labels)
                .increment(*events as u64);
            metrics::histogram!("pupsourcing_projection_batch_seconds", &labels)
                .record(elapsed.as_secs_f64());
            metrics::gauge!("pupsourcing_projection_lag_positions", &labels)
                .set((head - checkpoint).max(0) as f64);
        }
    }

    /// Waits for the poll interval, a wake-up or the shutdown, whichever comes first.
    async fn idle(&self, shutdown: &CancellationToken, wake: Option<&mut watch::Receiver<()>>) {
        let woken = async {
            let woke = match wake {
                Some(wake) => wake.changed().await.is_ok(),
                None => false,
            };
            if !woke {
                // No channel, or a closed one: only the poll interval wakes it.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(self.config.poll_interval) => {}
            _ = woken => {}
            _ = shutdown.cancelled() => {}
        }
    }

    pub(crate) fn store(&self) -> &S {
        &self.store
    }

    pub(crate) fn projection(&self) -> &SharedProjection<S> {
        &self.projection
    }

    pub(crate) fn checkpointing(&self) -> &dyn Checkpointing<S> {
        self.checkpointing.as_ref()
    }

    pub(crate) fn store_error(&self, source: pupsourcing_core::Error) -> ProjectionError {
        ProjectionError::Store {
            projection: self.name.to_string(),
            partition: self.config.partition,
            source,
        }
    }
}

/// Where a running processor stands between steps: the checkpoint it last saw (`None`: read
/// the stored one, after a start, a lost race or an error) and the next batch if it was read
/// ahead.
#[derive(Default)]
struct Cursor {
    checkpoint: Option<Position>,
    ready: Option<Batch>,
    /// Cuts a poison policy's retry wait short (`run`'s shutdown).
    shutdown: CancellationToken,
}

impl Cursor {
    fn stopping_on(shutdown: CancellationToken) -> Self {
        Self { checkpoint: None, ready: None, shutdown }
    }

    /// One step of `processor` from here, remembering where it left the checkpoint.
    async fn step<S: ProjectionStore>(
        &mut self,
        processor: &Processor<S>,
    ) -> Result<Progress, ProjectionError> {
        let stepped = match self.checkpoint.take() {
            Some(from) => processor.step_from(from, self.ready.take(), &self.shutdown).await,
            None => processor.step_unless(&self.shutdown).await.map(|progress| (progress, None)),
        };
        let (progress, next) = stepped?;
        self.ready = next;
        self.checkpoint = match progress {
            Progress::Handled { checkpoint, .. } | Progress::CaughtUp { checkpoint } => {
                Some(checkpoint)
            }
            Progress::Contended => None,
        };
        Ok(progress)
    }
}

/// Whether a store error may pass by itself (the processor retries it from the checkpoint).
fn retryable(error: &pupsourcing_core::Error) -> bool {
    use pupsourcing_core::Error;
    matches!(error, Error::Database(_) | Error::Timeout | Error::TransactionConflict(_))
}
