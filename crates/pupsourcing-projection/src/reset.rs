//! Rebuilding a projection and replaying dead letters.

use pupsourcing_core::Position;
use pupsourcing_core::projection::ProjectionStore;

use crate::error::ProjectionError;
use crate::projection::{Projection, caught};

/// Resets `projection`: its checkpoints and dead letters are removed (and its orchestrator
/// shard rows rewound to 0, unowned, under a new epoch, which fences out a processor still
/// running one) and its `reset` hook clears the read model, in one transaction. Its next run
/// replays the log from position 0.
///
/// The checkpoints and dead letters go first, and the hook runs after: on PostgreSQL the
/// deletes wait for every batch (and dead-letter replay) in flight to end, and hold back those
/// that start later until the reset ends (they then find their checkpoint or dead letter gone
/// and roll back), so the hook's statements see every batch committed before the reset and
/// none can commit during it. (The other order let a batch commit while the hook ran: the hook
/// did not clear its rows, the reset removed its checkpoint, and the rerun applied it again.)
///
/// Stop the projection's processors first all the same: one that is still running keeps going
/// from where it was until its next compare-and-set fails (at its next batch, so not before
/// the log moves), then starts over from 0. For a rebuild without downtime, run a projection
/// under a new name (`orders_v2`) beside the old one and switch readers once its lag is 0.
pub async fn reset<S: ProjectionStore, P: Projection<S>>(
    store: &S,
    projection: &P,
) -> Result<(), ProjectionError> {
    let name = projection.name().to_string();
    let store_error = |source| ProjectionError::Store {
        projection: name.clone(),
        partition: Default::default(),
        source,
    };
    let mut tx = store.begin().await.map_err(store_error)?;
    // First: waits for the batches in flight, and holds back the next ones (see above).
    store.reset_checkpoints_in(&mut tx, &name).await.map_err(store_error)?;
    if let Err(source) = caught(projection.reset(&mut tx)).await {
        let _ = store.rollback(tx).await;
        return Err(ProjectionError::Reset { projection: name, source });
    }
    store.commit(tx).await.map_err(store_error)?;
    tracing::info!(projection = %name, "projection reset");
    Ok(())
}

/// Handles the dead letter of `projection` at `position` again and removes it, in one
/// transaction. Returns false when there is no such dead letter. When the handler fails
/// again, nothing changes and its error is returned.
pub async fn replay_dead_letter<S: ProjectionStore, P: Projection<S>>(
    store: &S,
    projection: &P,
    position: Position,
) -> Result<bool, ProjectionError> {
    let name = projection.name().to_string();
    let letters = store.dead_letters(Some(&name)).await;
    let store_error = |source| ProjectionError::Store {
        projection: name.clone(),
        partition: Default::default(),
        source,
    };
    let letters = letters.map_err(store_error)?;
    let Some(letter) = letters.into_iter().find(|l| l.position == position) else {
        return Ok(false);
    };
    let events = store.read_all(position, 1).await.map_err(store_error)?;
    let Some(event) = events.into_iter().find(|e| e.position == position) else {
        return Ok(false);
    };
    let mut tx = store.begin().await.map_err(store_error)?;
    // The letter's row first, then the read model: the order `reset` takes them in (it deletes
    // dead letters before its hook clears the read model), so the two wait for each other
    // instead of deadlocking where a delete waits for uncommitted inserts (InnoDB).
    let removed = store.remove_dead_letter_in(&mut tx, &name, position).await;
    if !removed.map_err(store_error)? {
        // Replayed by someone else meanwhile: apply nothing twice.
        let _ = store.rollback(tx).await;
        return Ok(false);
    }
    let single = std::slice::from_ref(&event);
    if let Err(source) = caught(projection.handle_batch(&mut tx, single)).await {
        // The rollback keeps the letter.
        let _ = store.rollback(tx).await;
        return Err(ProjectionError::Handler {
            projection: name,
            partition: letter.partition,
            position,
            event_id: event.event_id,
            attempts: letter.attempts + 1,
            source,
        });
    }
    store.commit(tx).await.map_err(store_error)?;
    Ok(true)
}
