//! Input validation run before any statement: a batch that fails here never reaches the database.

use std::collections::HashSet;

use crate::error::ValidationError;
use crate::event::{NewEvent, StreamId};
use crate::store::ExpectedVersion;

/// Limits on what one append or query may contain. Every backend enforces the same limits
/// before touching the database, so what one backend accepts, every backend stores and reads
/// back.
///
/// Each field has a ceiling ([`Limits::CEILING`]) set by what every backend can store, index
/// and read back; [`Limits::check`] (run by every append and query) refuses a configuration
/// beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events in one append (default 1,000).
    pub max_batch_size: usize,
    /// Longest event type, aggregate type or bounded context, in bytes (default 255).
    pub max_name_len: usize,
    /// Longest tag, in bytes (default 255).
    pub max_tag_len: usize,
    /// Most tags on one event, and in one query item (default 100).
    pub max_tags_per_event: usize,
    /// Deepest nesting of arrays and objects in JSON metadata and command data (default 32).
    /// JSON readers refuse very deep documents, so deeper metadata could be stored but never
    /// read back.
    pub max_metadata_depth: usize,
    /// Most items in one DCB query or condition (default 100).
    pub max_query_items: usize,
    /// Most event types in one DCB query item (default 100).
    pub max_query_types_per_item: usize,
    /// Most advisory locks one DCB-aware append takes before it falls back to one exclusive
    /// global lock (default 256; keeps huge batches from exhausting the lock table).
    pub max_lock_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch_size: 1000,
            max_name_len: 255,
            max_tag_len: 255,
            max_tags_per_event: 100,
            max_metadata_depth: 32,
            max_query_items: 100,
            max_query_types_per_item: 100,
            max_lock_keys: 256,
        }
    }
}

impl Limits {
    /// The largest value each limit may take:
    /// - names and tags: 2,048 bytes, which keeps every index entry holding one (event type,
    ///   tag, aggregate type) below PostgreSQL's B-tree entry limit of about 2,700 bytes;
    /// - metadata depth: 100, below the 128 levels JSON readers (serde_json) accept;
    /// - query items: 1,000, which both backends compile and plan (PostgreSQL's stack depth
    ///   limit is reached at several thousand);
    /// - batch size 100,000 events, tags per event and types per item 1,024, lock keys 1,024
    ///   (PostgreSQL's lock table holds 64 locks per connection by default).
    pub const CEILING: Limits = Limits {
        max_batch_size: 100_000,
        max_name_len: 2048,
        max_tag_len: 2048,
        max_tags_per_event: 1024,
        max_metadata_depth: 100,
        max_query_items: 1000,
        max_query_types_per_item: 1024,
        max_lock_keys: 1024,
    };

    /// Checks that every limit is at least 1 and at most its [`Limits::CEILING`].
    ///
    /// ```
    /// use pupsourcing_core::{Limits, ValidationError};
    /// assert!(Limits::default().check().is_ok());
    /// let too_long = Limits { max_tag_len: 10_000, ..Limits::default() };
    /// assert!(matches!(too_long.check(), Err(ValidationError::InvalidLimit { field: "max_tag_len", .. })));
    /// ```
    pub fn check(&self) -> Result<(), ValidationError> {
        let c = Self::CEILING;
        let fields = [
            ("max_batch_size", self.max_batch_size, c.max_batch_size),
            ("max_name_len", self.max_name_len, c.max_name_len),
            ("max_tag_len", self.max_tag_len, c.max_tag_len),
            ("max_tags_per_event", self.max_tags_per_event, c.max_tags_per_event),
            ("max_metadata_depth", self.max_metadata_depth, c.max_metadata_depth),
            ("max_query_items", self.max_query_items, c.max_query_items),
            ("max_query_types_per_item", self.max_query_types_per_item, c.max_query_types_per_item),
            ("max_lock_keys", self.max_lock_keys, c.max_lock_keys),
        ];
        match fields.into_iter().find(|&(_, value, max)| value == 0 || value > max) {
            Some((field, value, max)) => Err(ValidationError::InvalidLimit { field, value, max }),
            None => Ok(()),
        }
    }
}

/// Refuses a negative position, naming it `field` in the error: positions start at 1, and 0
/// means "before the first event". Every backend checks a position it stores (a checkpoint, a
/// shard's) this way before it reaches the database, so they all answer alike.
///
/// ```
/// use pupsourcing_core::{validate_position, ValidationError};
/// assert!(validate_position("checkpoint position", 0).is_ok());
/// let reason = "must not be negative";
/// let field = "checkpoint position";
/// assert_eq!(validate_position(field, -1), Err(ValidationError::OutOfRange { field, reason }));
/// ```
pub fn validate_position(
    field: &'static str,
    position: crate::event::Position,
) -> Result<(), ValidationError> {
    if position < 0 {
        return Err(ValidationError::OutOfRange { field, reason: "must not be negative" });
    }
    Ok(())
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
    limits.check()?;
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
    if let ExpectedVersion::Exact(v) = expected {
        if v < 0 {
            return Err(ValidationError::OutOfRange {
                field: "expected version",
                reason: "a version is never negative",
            });
        }
        if v.checked_add(events.len() as i64).is_none() {
            return Err(ValidationError::OutOfRange {
                field: "expected version",
                reason: "the batch would take the stream's version past the largest 64-bit integer",
            });
        }
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
    check_count("tags of an event", event.tags.len(), limits.max_tags_per_event)?;
    check_tags(&event.tags, limits.max_tag_len)?;
    if let Some(metadata) = &event.metadata {
        check_json("metadata", metadata, limits.max_metadata_depth)?;
    }
    check_timestamp(event.created_at)
}

/// Checks a set of tags: each non-empty, within `max_len`, no NUL, no duplicates.
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

/// Checks a name: non-empty, at most `max` bytes, no NUL character.
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
    check_no_nul(field, value)
}

/// Checks that a list has at most `max` entries.
pub(crate) fn check_count(
    field: &'static str,
    len: usize,
    max: usize,
) -> Result<(), ValidationError> {
    if len > max {
        return Err(ValidationError::TooMany { field, len, max });
    }
    Ok(())
}

fn check_no_nul(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        return Err(ValidationError::NulCharacter { field });
    }
    Ok(())
}

/// Checks a JSON document (metadata, command data): no NUL in any key or string, at most
/// `max_depth` levels of arrays and objects. Walks the document with an explicit stack, so a
/// document nested thousands of levels deep is refused without recursing.
pub(crate) fn check_json(
    field: &'static str,
    value: &serde_json::Value,
    max_depth: usize,
) -> Result<(), ValidationError> {
    use serde_json::Value;
    let mut stack = vec![(value, 0_usize)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::String(s) => check_no_nul(field, s)?,
            Value::Array(_) | Value::Object(_) if depth >= max_depth => {
                return Err(ValidationError::TooDeep { field, max: max_depth });
            }
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => {
                for (key, v) in map {
                    check_no_nul(field, key)?;
                    stack.push((v, depth + 1));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    Ok(())
}

/// The first and last second every backend stores: 0001-01-01T00:00:00Z and
/// 9999-12-31T23:59:59Z (PostgreSQL stores from 4713 BC, SQLite as 64-bit microseconds, and
/// four-digit years print the same everywhere).
const FIRST_SECOND: i64 = -62_135_596_800;
const LAST_SECOND: i64 = 253_402_300_799;

/// The `created_at` values every backend stores: 0001-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999999Z. Appends outside it fail with
/// [`ValidationError::TimestampOutOfRange`].
pub fn storable_timestamps() -> std::ops::RangeInclusive<chrono::DateTime<chrono::Utc>> {
    let at = |secs, nanos| chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default();
    at(FIRST_SECOND, 0)..=at(LAST_SECOND, 999_999_000)
}

fn check_timestamp(at: chrono::DateTime<chrono::Utc>) -> Result<(), ValidationError> {
    if (FIRST_SECOND..=LAST_SECOND).contains(&at.timestamp()) {
        Ok(())
    } else {
        Err(ValidationError::TimestampOutOfRange { at })
    }
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
        let at_max = ExpectedVersion::Exact(i64::MAX);
        assert!(matches!(
            validate_batch(None, at_max, &[ok_event()], &Limits::default()),
            Err(ValidationError::OutOfRange { field: "expected version", .. })
        ));
    }

    #[test]
    fn rejects_nul_characters_everywhere_they_would_be_stored() {
        let nul = "a\0b";
        let cases = [
            NewEvent::new(nul, vec![]),
            ok_event().with_bounded_context(nul),
            ok_event().with_tags([nul]),
            ok_event().with_metadata(serde_json::json!({ "k": [1, nul] })),
            ok_event().with_metadata(serde_json::json!({ nul: 1 })),
        ];
        for event in cases {
            assert!(
                matches!(
                    check(std::slice::from_ref(&event)),
                    Err(ValidationError::NulCharacter { .. })
                ),
                "{event:?}"
            );
        }
        let stream = StreamId::new(nul, uuid::Uuid::nil());
        assert_eq!(
            validate_batch(Some(&stream), ExpectedVersion::Any, &[ok_event()], &Limits::default()),
            Err(ValidationError::NulCharacter { field: "aggregate type" })
        );
    }

    fn nested(depth: usize) -> serde_json::Value {
        let mut value = serde_json::json!("leaf");
        for i in 0..depth {
            value = if i % 2 == 0 {
                serde_json::Value::Object([("k".to_string(), value)].into_iter().collect())
            } else {
                serde_json::Value::Array(vec![value])
            };
        }
        value
    }

    #[test]
    fn bounds_metadata_depth_without_recursing() {
        let limits = Limits::default();
        let at = |depth| check(&[ok_event().with_metadata(nested(depth))]);
        assert_eq!(at(limits.max_metadata_depth), Ok(()));
        assert_eq!(
            at(limits.max_metadata_depth + 1),
            Err(ValidationError::TooDeep { field: "metadata", max: limits.max_metadata_depth })
        );
        // Deep enough to overflow the stack of a recursive walk; run on a small stack to
        // prove it. The value is taken apart level by level so that its drop does not recurse.
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let mut deep = serde_json::json!(1);
                for _ in 0..100_000 {
                    deep = serde_json::Value::Array(vec![deep]);
                }
                let event = ok_event().with_metadata(deep);
                let result = check(std::slice::from_ref(&event));
                let mut value = event.metadata.unwrap();
                while let serde_json::Value::Array(mut items) = value {
                    value = items.pop().unwrap_or_default();
                }
                result
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(matches!(result, Err(ValidationError::TooDeep { .. })));
    }

    #[test]
    fn bounds_timestamps_to_what_every_backend_stores() {
        let range = storable_timestamps();
        for at in [*range.start(), *range.end()] {
            assert_eq!(check(&[ok_event().with_created_at(at)]), Ok(()), "{at}");
        }
        let before = *range.start() - chrono::TimeDelta::microseconds(1);
        let after = *range.end() + chrono::TimeDelta::microseconds(1);
        for at in [before, after, chrono::DateTime::<chrono::Utc>::MIN_UTC] {
            let mut event = ok_event();
            event.created_at = at;
            assert_eq!(check(&[event]), Err(ValidationError::TimestampOutOfRange { at }));
        }
    }

    #[test]
    fn bounds_tags_per_event_and_checks_the_limits_themselves() {
        let limits = Limits { max_tags_per_event: 2, ..Limits::default() };
        let event = ok_event().with_tags(["a", "b", "c"]);
        assert_eq!(
            validate_batch(None, ExpectedVersion::Any, &[event], &limits),
            Err(ValidationError::TooMany { field: "tags of an event", len: 3, max: 2 })
        );
        assert_eq!(Limits::CEILING.check(), Ok(()));
        let beyond = Limits { max_name_len: Limits::CEILING.max_name_len + 1, ..Limits::default() };
        assert!(matches!(
            validate_batch(None, ExpectedVersion::Any, &[ok_event()], &beyond),
            Err(ValidationError::InvalidLimit { field: "max_name_len", .. })
        ));
        let zero = Limits { max_batch_size: 0, ..Limits::default() };
        assert!(matches!(zero.check(), Err(ValidationError::InvalidLimit { value: 0, .. })));
    }
}
