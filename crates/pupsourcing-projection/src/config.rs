//! How a processor runs: batch size, polling, partition and the poison-event policy.

use std::time::Duration;

use pupsourcing_core::ValidationError;
use pupsourcing_core::projection::Partition;

/// The largest batch a processor reads at once.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// What a processor does when its handler fails on an event (returns an error or panics).
///
/// Any error the handler returns counts, including a database error it passes on (a deadlock,
/// a lock timeout): with read models that can hit those, prefer [`PoisonPolicy::Retry`]. A
/// handler must pass its statements' errors on: one that swallows a failed statement leaves a
/// PostgreSQL transaction aborted, so the commit fails, which the processor takes for a
/// database error and retries from the checkpoint (with growing waits, logged) instead of
/// applying the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoisonPolicy {
    /// Stop the partition: the events before the failing one are applied, the checkpoint
    /// stays just before it, and the error is stored in the checkpoint's status.
    #[default]
    Stop,
    /// Handle the batch again, up to `attempts` times in all, waiting `backoff` (doubled each
    /// time) in between; then stop as [`PoisonPolicy::Stop`] does.
    Retry {
        /// Tries in all, the first included.
        attempts: u32,
        /// Wait before the second try.
        backoff: Duration,
    },
    /// Set the failing event aside in the dead-letter table, in the transaction that moves
    /// the checkpoint past it, and apply the rest of the batch (exactly once).
    DeadLetter,
}

/// Settings of one processor (one partition of one projection).
///
/// ```
/// use std::time::Duration;
/// use pupsourcing_core::projection::Partition;
/// use pupsourcing_projection::{PoisonPolicy, ProcessorConfig};
///
/// let config = ProcessorConfig::default()
///     .batch_size(1_000)
///     .poll_interval(Duration::from_millis(100))
///     .partition(Partition::new(1, 4).unwrap())
///     .poison(PoisonPolicy::DeadLetter);
/// assert!(config.validate().is_ok());
/// assert!(ProcessorConfig::default().batch_size(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    /// Events read and handled per transaction (default 500, at most [`MAX_BATCH_SIZE`]).
    pub batch_size: usize,
    /// How long an idle processor waits before it reads again (default 200 ms); a wake-up
    /// (see [`crate::Processor::wake_on`]) ends the wait early.
    pub poll_interval: Duration,
    /// Which partition to run (default: the single partition holding every event).
    pub partition: Partition,
    /// What to do with an event the handler fails on.
    pub poison: PoisonPolicy,
    /// The first wait after a database error (doubled up to 30 s while it persists).
    pub error_backoff: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(200),
            partition: Partition::all(),
            poison: PoisonPolicy::Stop,
            error_backoff: Duration::from_millis(100),
        }
    }
}

impl ProcessorConfig {
    /// Sets the batch size.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// Sets the idle polling interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: Partition) -> Self {
        self.partition = partition;
        self
    }

    /// Sets the poison-event policy.
    pub fn poison(mut self, policy: PoisonPolicy) -> Self {
        self.poison = policy;
        self
    }

    /// Checks the settings: a batch size of 1 to [`MAX_BATCH_SIZE`], a retry policy with at
    /// least one attempt.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(ValidationError::Projection {
                reason: format!("batch size {} is outside 1..={MAX_BATCH_SIZE}", self.batch_size),
            });
        }
        if let PoisonPolicy::Retry { attempts: 0, .. } = self.poison {
            return Err(ValidationError::Projection {
                reason: "a retry policy needs at least 1 attempt".to_string(),
            });
        }
        Ok(())
    }
}
