//! Passes over a batch: each is one transaction that either commits the handled events with
//! the checkpoint, or rolls back whole. The poison-event policies are sequences of passes.

use std::time::Duration;

use chrono::Utc;
use pupsourcing_core::projection::{DeadLetter, ProjectionStore};
use pupsourcing_core::{Position, RecordedEvent};

use tokio_util::sync::CancellationToken;

use crate::config::PoisonPolicy;
use crate::error::ProjectionError;
use crate::processor::Processor;
use crate::projection::HandlerError;

/// The longest wait between two tries of a failing batch.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// How one pass ended.
pub(crate) enum Pass {
    /// Committed: the events are applied and the checkpoint moved.
    Committed,
    /// Rolled back: another processor moved the checkpoint first.
    Moved,
    /// Rolled back, not tried again: the shutdown came during a retry wait.
    Interrupted,
    /// Rolled back: the handler failed (on the event at `index`, when known).
    Failed { index: Option<usize>, error: HandlerError },
}

/// The passes of one batch: its events, read after `from`, move the checkpoint to `to`.
pub(crate) struct Passes<'a, S: ProjectionStore> {
    pub processor: &'a Processor<S>,
    pub from: Position,
    pub to: Position,
    pub events: &'a [RecordedEvent],
    /// Ends a retry wait early.
    pub shutdown: &'a CancellationToken,
}

impl<S: ProjectionStore> Passes<'_, S> {
    /// Applies the batch under `policy`: [`Pass::Committed`] or [`Pass::Moved`], or the
    /// handler's error when the policy stops the partition.
    pub async fn run(&self, policy: PoisonPolicy) -> Result<Pass, ProjectionError> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let error = match self.whole().await? {
                Pass::Failed { error, .. } => error,
                done => return Ok(done),
            };
            tracing::warn!(projection = self.processor.name(), from = self.from,
                to = self.to, attempts, %error, "a projection batch failed");
            match policy {
                PoisonPolicy::Retry { attempts: max, backoff } if attempts < max => {
                    let wait = backoff.saturating_mul(1 << (attempts - 1).min(16));
                    tokio::select! {
                        _ = tokio::time::sleep(wait.min(MAX_RETRY_BACKOFF)) => {}
                        _ = self.shutdown.cancelled() => return Ok(Pass::Interrupted),
                    }
                }
                PoisonPolicy::DeadLetter => return self.dead_letter(attempts).await,
                _ => return self.stop(attempts).await,
            }
        }
    }

    /// The whole batch in one transaction, the checkpoint moved first (so that a second
    /// processor of the partition waits on its row, then fails the compare-and-set).
    async fn whole(&self) -> Result<Pass, ProjectionError> {
        let store = self.processor.store();
        let mut tx = store.begin().await.map_err(|e| self.processor.store_error(e))?;
        if !self.advance(&mut tx, self.to).await? {
            self.rollback(tx).await?;
            return Ok(Pass::Moved);
        }
        match self.processor.projection().handle_batch(&mut tx, self.events).await {
            Ok(()) => self.commit(tx).await,
            Err(error) => {
                self.rollback(tx).await?;
                Ok(Pass::Failed { index: None, error })
            }
        }
    }

    /// `events` (a prefix of the batch) one at a time in one transaction, setting aside those
    /// listed in `dead` as dead letters, with the checkpoint moved to `to`.
    async fn one_by_one(
        &self,
        events: &[RecordedEvent],
        to: Position,
        dead: &[(usize, String)],
        attempts: u32,
    ) -> Result<Pass, ProjectionError> {
        let store = self.processor.store();
        let mut tx = store.begin().await.map_err(|e| self.processor.store_error(e))?;
        if !self.advance(&mut tx, to).await? {
            self.rollback(tx).await?;
            return Ok(Pass::Moved);
        }
        for (index, event) in events.iter().enumerate() {
            if let Some((_, error)) = dead.iter().find(|(i, _)| *i == index) {
                let letter = self.letter(event, error, attempts);
                let added = store.add_dead_letter_in(&mut tx, &letter).await;
                added.map_err(|e| self.processor.store_error(e))?;
                continue;
            }
            let single = std::slice::from_ref(event);
            if let Err(error) = self.processor.projection().handle_batch(&mut tx, single).await {
                self.rollback(tx).await?;
                return Ok(Pass::Failed { index: Some(index), error });
            }
        }
        self.commit(tx).await
    }

    /// Dead-letter policy: pass after pass, each failing event is set aside and the batch
    /// handled again without it, until a pass commits (at most one pass per event).
    async fn dead_letter(&self, attempts: u32) -> Result<Pass, ProjectionError> {
        let mut dead: Vec<(usize, String)> = Vec::new();
        loop {
            match self.one_by_one(self.events, self.to, &dead, attempts + 1).await? {
                Pass::Failed { index: Some(index), error } => {
                    let event = &self.events[index];
                    tracing::warn!(projection = self.processor.name(),
                        position = event.position, event_id = %event.event_id, %error,
                        "setting a poison event aside as a dead letter");
                    dead.push((index, error.to_string()));
                }
                Pass::Failed { index: None, .. } => unreachable!("one_by_one names the event"),
                done => return Ok(done),
            }
        }
    }

    /// Stop policy: finds the first event that fails on its own, applies the events before
    /// it with the checkpoint just below it, stores the error and stops.
    async fn stop(&self, attempts: u32) -> Result<Pass, ProjectionError> {
        let mut prefix = self.events;
        let mut end = self.to;
        let mut poison: Option<(usize, HandlerError)> = None;
        loop {
            match self.one_by_one(prefix, end, &[], attempts).await? {
                Pass::Failed { index: Some(index), error } => {
                    prefix = &self.events[..index];
                    end = self.events[index].position - 1;
                    poison = Some((index, error));
                }
                Pass::Failed { index: None, .. } | Pass::Interrupted => {
                    unreachable!("one_by_one names the event and never waits")
                }
                Pass::Committed => match poison {
                    Some((index, error)) => return Err(self.stopped(index, error, attempts).await),
                    // Every event went through on its own: the failure did not come back.
                    None => return Ok(Pass::Committed),
                },
                Pass::Moved => return Ok(Pass::Moved),
            }
        }
    }

    /// Stores the stop's error with the checkpoint and builds the processor's error.
    async fn stopped(&self, index: usize, error: HandlerError, attempts: u32) -> ProjectionError {
        let event = &self.events[index];
        let processor = self.processor;
        let partition = processor.config().partition;
        let name = processor.name();
        let message = format!("position {} (event {}): {error}", event.position, event.event_id);
        let stored = processor.checkpointing().record_error(processor.store(), &message).await;
        if let Err(e) = stored {
            tracing::warn!(projection = name, error = %e, "could not store the stop's error");
        }
        ProjectionError::Handler {
            projection: name.to_string(),
            partition,
            position: event.position,
            event_id: event.event_id,
            attempts,
            source: error,
        }
    }

    fn letter(&self, event: &RecordedEvent, error: &str, attempts: u32) -> DeadLetter {
        DeadLetter {
            projection: self.processor.name().to_string(),
            partition: self.processor.config().partition,
            position: event.position,
            event_id: event.event_id,
            error: error.to_string(),
            attempts,
            recorded_at: Utc::now(),
        }
    }

    async fn advance(
        &self,
        tx: &mut S::Transaction,
        to: Position,
    ) -> Result<bool, ProjectionError> {
        let processor = self.processor;
        let checkpointing = processor.checkpointing();
        let moved = checkpointing.advance_in(processor.store(), tx, self.from, to).await;
        moved.map_err(|e| processor.store_error(e))
    }

    async fn commit(&self, tx: S::Transaction) -> Result<Pass, ProjectionError> {
        let committed = self.processor.store().commit(tx).await;
        committed.map_err(|e| self.processor.store_error(e))?;
        Ok(Pass::Committed)
    }

    async fn rollback(&self, tx: S::Transaction) -> Result<(), ProjectionError> {
        self.processor.store().rollback(tx).await.map_err(|e| self.processor.store_error(e))
    }
}
