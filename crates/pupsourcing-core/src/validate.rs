//! Input validation run before any statement: a batch that fails here never reaches the database.

use std::collections::HashSet;

use crate::error::ValidationError;
use crate::event::{NewEvent, StreamId};
use crate::store::ExpectedVersion;

/// Limits on what one append may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events in one append (default 1,000).
    pub max_batch_size: usize,
    /// Longest event type, aggregate type or bounded context, in bytes (default 255).
    pub max_name_len: usize,
    /// Longest tag, in bytes (default 255).
    pub max_tag_len: usize,
    /// Most advisory locks one DCB-aware append takes before it falls back to one exclusive
    /// global lock (default 256; keeps huge batches from exhausting the lock table).
    pub max_lock_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_batch_size: 1000, max_name_len: 255, max_tag_len: 255, max_lock_keys: 256 }
    }
}

/// Checks a stream append: the stream name, the expected version and every event.
///
/// ```
/// use pupsourcing_core::{validate_batch, ExpectedVersion, Limits, NewEvent, StreamId, ValidationError};
/// let stream = StreamId::new("Order", uuid::Uuid::now_v7());
/// let err = validate_batch(Some(&stream), ExpectedVersion::Any, &[], &Limits::default());
/// assert_eq!(err, Err(ValidationError::EmptyBatch));
/// ```
pub fn validate_batch(
    stream: Option<&StreamId>,
    expected: ExpectedVersion,
    events: &[NewEvent],
    limits: &Limits,
) -> Result<(), ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::EmptyBatch);
    }
    if events.len() > limits.max_batch_size {
        return Err(ValidationError::BatchTooLarge {
            len: events.len(),
            max: limits.max_batch_size,
        });
    }
    if let Some(stream) = stream {
        check_name("aggregate type", &stream.aggregate_type, limits.max_name_len)?;
    }
    if let ExpectedVersion::Exact(v) = expected
        && v < 0
    {
        return Err(ValidationError::OutOfRange {
            field: "expected version",
            reason: "a version is never negative",
        });
    }
    let mut ids = HashSet::with_capacity(events.len());
    for event in events {
        if !ids.insert(event.event_id) {
            return Err(ValidationError::DuplicateEventId(event.event_id));
        }
        check_event(event, limits)?;
    }
    Ok(())
}

fn check_event(event: &NewEvent, limits: &Limits) -> Result<(), ValidationError> {
    check_name("event type", &event.event_type, limits.max_name_len)?;
    if let Some(context) = &event.bounded_context {
        check_name("bounded context", context, limits.max_name_len)?;
    }
    check_tags(&event.tags, limits.max_tag_len)
}

/// Checks a set of tags: each non-empty, within `max_len`, no duplicates.
pub(crate) fn check_tags(tags: &[String], max_len: usize) -> Result<(), ValidationError> {
    let mut seen = HashSet::with_capacity(tags.len());
    for tag in tags {
        check_name("tag", tag, max_len)?;
        if !seen.insert(tag.as_str()) {
            return Err(ValidationError::DuplicateTag(tag.clone()));
        }
    }
    Ok(())
}

pub(crate) fn check_name(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if value.len() > max {
        return Err(ValidationError::TooLong { field, len: value.len(), max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_event() -> NewEvent {
        NewEvent::new("Happened", b"{}".to_vec())
    }

    fn check(events: &[NewEvent]) -> Result<(), ValidationError> {
        validate_batch(None, ExpectedVersion::Any, events, &Limits::default())
    }

    #[test]
    fn accepts_a_plain_batch() {
        assert_eq!(check(&[ok_event(), ok_event()]), Ok(()));
    }

    #[test]
    fn rejects_bad_batches() {
        let limits = Limits { max_batch_size: 2, ..Limits::default() };
        let three = [ok_event(), ok_event(), ok_event()];
        assert_eq!(
            validate_batch(None, ExpectedVersion::Any, &three, &limits),
            Err(ValidationError::BatchTooLarge { len: 3, max: 2 })
        );
        let e = ok_event();
        assert_eq!(
            check(&[e.clone(), e.clone()]),
            Err(ValidationError::DuplicateEventId(e.event_id))
        );
        assert_eq!(
            check(&[NewEvent::new("", vec![])]),
            Err(ValidationError::Empty { field: "event type" })
        );
        assert!(matches!(
            check(&[NewEvent::new("x".repeat(256), vec![])]),
            Err(ValidationError::TooLong { field: "event type", len: 256, .. })
        ));
        assert_eq!(
            check(&[ok_event().with_tags(["a", "a"])]),
            Err(ValidationError::DuplicateTag("a".into()))
        );
        assert_eq!(
            check(&[ok_event().with_tags([""])]),
            Err(ValidationError::Empty { field: "tag" })
        );
        let stream = StreamId::new("", uuid::Uuid::nil());
        assert_eq!(
            validate_batch(Some(&stream), ExpectedVersion::Any, &[ok_event()], &Limits::default()),
            Err(ValidationError::Empty { field: "aggregate type" })
        );
        assert!(matches!(
            validate_batch(None, ExpectedVersion::Exact(-1), &[ok_event()], &Limits::default()),
            Err(ValidationError::OutOfRange { .. })
        ));
    }
}
