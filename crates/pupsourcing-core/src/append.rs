//! What every backend's append shares around its SQL: where the append goes ([`Target`]), the
//! checks it runs before anything reaches the database ([`Target::validate`]), and what event
//! ids found already stored make of it ([`replay`]).

use std::collections::HashMap;

use uuid::Uuid;

use crate::dcb::AppendCondition;
use crate::error::{Error, ValidationError};
use crate::event::{NewEvent, Position, StreamId, Version};
use crate::store::{AppendResult, ExpectedVersion};
use crate::validate::{Limits, validate_batch};

/// Where an append goes: an aggregate stream ([`crate::EventStore::append`]) or the DCB path
/// ([`crate::dcb::DcbStore::append_if`]).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// An aggregate stream, with what the append expects of its version.
    Stream(&'a StreamId, ExpectedVersion),
    /// The DCB path: no stream, optionally under an append condition.
    Dcb(Option<&'a AppendCondition>),
}

impl<'a> Target<'a> {
    /// Checks the batch (and the condition) before anything reaches the database: what
    /// [`validate_batch`] checks, with the stream and expected version of a stream append, and
    /// [`AppendCondition::validate`] for a condition.
    ///
    /// ```
    /// use pupsourcing_core::append::Target;
    /// use pupsourcing_core::{ExpectedVersion, Limits, StreamId, ValidationError};
    /// let stream = StreamId::new("Order", uuid::Uuid::now_v7());
    /// let target = Target::Stream(&stream, ExpectedVersion::Exact(-1));
    /// let event = pupsourcing_core::NewEvent::new("Placed", b"{}".to_vec());
    /// assert!(matches!(
    ///     target.validate(&[event], &Limits::default()),
    ///     Err(ValidationError::OutOfRange { field: "expected version", .. })
    /// ));
    /// ```
    pub fn validate(&self, events: &[NewEvent], limits: &Limits) -> Result<(), ValidationError> {
        validate_batch(self.stream(), self.expected(), events, limits)?;
        match self.condition() {
            Some(condition) => condition.validate(limits),
            None => Ok(()),
        }
    }

    /// The stream appended to; `None` on the DCB path.
    pub fn stream(&self) -> Option<&'a StreamId> {
        match *self {
            Target::Stream(stream, _) => Some(stream),
            Target::Dcb(_) => None,
        }
    }

    /// What the append expects of the stream's version ([`ExpectedVersion::Any`] on the DCB
    /// path, which has no stream).
    pub fn expected(&self) -> ExpectedVersion {
        match *self {
            Target::Stream(_, expected) => expected,
            Target::Dcb(_) => ExpectedVersion::Any,
        }
    }

    /// The append condition of a conditional DCB append.
    pub fn condition(&self) -> Option<&'a AppendCondition> {
        match *self {
            Target::Stream(..) | Target::Dcb(None) => None,
            Target::Dcb(Some(condition)) => Some(condition),
        }
    }
}

/// Event ids of a batch found already stored, each with its position and its version (0 for
/// an event outside any stream).
pub type StoredIds = HashMap<Uuid, (Position, Version)>;

/// The idempotency rule every backend applies to the ids of `events` that are stored already
/// (`stored` holds only ids of the batch, none the append itself just wrote):
/// - all of them: `Ok(Some(..))`, a replay reporting the original positions (and versions,
///   for a stream append; a DCB append reports none, as when it was first written);
/// - some of them: [`Error::PartialDuplicate`], since an idempotent retry must resend exactly
///   the same events;
/// - none: `Ok(None)`, the append goes on.
///
/// ```
/// use pupsourcing_core::append::{replay, StoredIds, Target};
/// use pupsourcing_core::{Error, NewEvent};
/// let events = [NewEvent::new("A", vec![]), NewEvent::new("B", vec![])];
/// let mut stored = StoredIds::new();
/// assert!(replay(Target::Dcb(None), &events, &stored).unwrap().is_none());
/// stored.insert(events[1].event_id, (8, 0));
/// let partial = replay(Target::Dcb(None), &events, &stored);
/// assert!(matches!(partial, Err(Error::PartialDuplicate { stored: 1, total: 2, .. })));
/// stored.insert(events[0].event_id, (7, 0));
/// let replayed = replay(Target::Dcb(None), &events, &stored).unwrap().unwrap();
/// assert_eq!((replayed.positions, replayed.replayed), (vec![7, 8], true));
/// ```
pub fn replay(
    target: Target<'_>,
    events: &[NewEvent],
    stored: &StoredIds,
) -> Result<Option<AppendResult>, Error> {
    if stored.len() == events.len() {
        let (positions, versions): (Vec<Position>, Vec<Version>) =
            events.iter().map(|e| stored.get(&e.event_id).copied().unwrap_or_default()).unzip();
        let versions = if target.stream().is_some() { versions } else { Vec::new() };
        return Ok(Some(AppendResult { positions, versions, replayed: true }));
    }
    match events.iter().find(|e| stored.contains_key(&e.event_id)) {
        Some(first) => Err(Error::PartialDuplicate {
            stored: stored.len(),
            total: events.len(),
            first: first.event_id,
        }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcb::{Query, QueryItem};

    fn events(n: usize) -> Vec<NewEvent> {
        (0..n).map(|i| NewEvent::new(format!("E{i}"), b"{}".to_vec())).collect()
    }

    #[test]
    fn a_stream_replay_reports_the_original_positions_and_versions_in_batch_order() {
        let stream = StreamId::new("Order", Uuid::now_v7());
        let batch = events(3);
        let stored: StoredIds = batch
            .iter()
            .enumerate()
            .map(|(i, e)| (e.event_id, (10 - i as i64, i as i64 + 1)))
            .collect();
        let target = Target::Stream(&stream, ExpectedVersion::NoStream);
        let result = replay(target, &batch, &stored).unwrap().expect("a replay");
        assert_eq!(
            result,
            AppendResult { positions: vec![10, 9, 8], versions: vec![1, 2, 3], replayed: true }
        );
    }

    #[test]
    fn a_partial_duplicate_names_the_first_stored_event_of_the_batch() {
        let batch = events(4);
        let stored: StoredIds =
            [&batch[3], &batch[1]].iter().map(|e| (e.event_id, (1, 0))).collect();
        match replay(Target::Dcb(None), &batch, &stored) {
            Err(Error::PartialDuplicate { stored: 2, total: 4, first }) => {
                assert_eq!(first, batch[1].event_id);
            }
            other => panic!("expected a partial duplicate, got {other:?}"),
        }
    }

    #[test]
    fn validation_covers_the_condition_of_a_dcb_append() {
        let limits = Limits { max_query_items: 1, ..Limits::default() };
        let query = Query::from_items([QueryItem::types(["A"]), QueryItem::types(["B"])]);
        let condition = AppendCondition::new(query, None);
        let err = Target::Dcb(Some(&condition)).validate(&events(1), &limits).unwrap_err();
        assert!(matches!(err, ValidationError::TooMany { field: "query items", .. }), "{err:?}");
        assert_eq!(Target::Dcb(None).validate(&[], &limits), Err(ValidationError::EmptyBatch));
    }
}
