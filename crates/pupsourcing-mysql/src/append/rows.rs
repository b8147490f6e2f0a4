//! The rows of a batch insert, split into statements that fit MySQL's limits: at most 65,535
//! placeholders per prepared statement, and at most `max_allowed_packet` bytes per packet.
//! The split is planned before the append's transaction begins, so an event too big for any
//! packet is refused up front, writing nothing, never truncated or half written.

use pupsourcing_core::projection::partition_hash;
use pupsourcing_core::{NewEvent, Position, Result, StreamId, ValidationError, Version};
use sqlx::MySql;
use sqlx::mysql::MySqlArguments;
use sqlx::query::Query;

/// One event's row in the insert.
pub(crate) const EVENT_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const EVENT_PLACEHOLDERS: usize = 16;
const TAG_PLACEHOLDERS: usize = 3;
/// MySQL's limit on placeholders in one prepared statement.
const MAX_PLACEHOLDERS: usize = 65_535;
/// Ids per idempotency lookup.
pub(crate) const IDS_PER_LOOKUP: usize = 10_000;
/// Room left in a packet for the statement's header and per-value framing beyond the
/// estimate below.
const PACKET_SLACK: usize = 64 * 1024;
/// Per-value framing and fixed-size columns, counted generously.
const VALUE_OVERHEAD: usize = 16;

/// A batch's rows, as chunks of event indexes and of (event, tag) indexes, one statement each.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    pub(crate) events: Vec<Vec<usize>>,
    pub(crate) tags: Vec<Vec<(usize, usize)>>,
}

impl Chunks {
    /// Splits `events` for a server whose `max_allowed_packet` is `max_packet` bytes; fails
    /// with [`ValidationError::TooLong`] when one event alone cannot fit a packet.
    pub(crate) fn plan(
        events: &[NewEvent],
        stream: Option<&StreamId>,
        max_packet: usize,
    ) -> Result<Self> {
        let budget = max_packet.saturating_sub(PACKET_SLACK).max(1);
        let aggregate = stream.map_or(0, |s| s.aggregate_type.len());
        let sizes = events.iter().map(|e| event_size(e, aggregate));
        let events_chunks = split(sizes.collect(), EVENT_PLACEHOLDERS, budget, "event row")?;
        let tags: Vec<(usize, usize, usize)> = events
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                let type_len = e.event_type.len();
                e.tags.iter().enumerate().map(move |(t, tag)| (i, t, tag.len() + type_len))
            })
            .collect();
        let tag_sizes = tags.iter().map(|&(_, _, size)| size + 3 * VALUE_OVERHEAD).collect();
        let tag_chunks = split(tag_sizes, TAG_PLACEHOLDERS, budget, "tag row")?;
        Ok(Self {
            events: events_chunks,
            tags: tag_chunks
                .into_iter()
                .map(|chunk| chunk.into_iter().map(|k| (tags[k].0, tags[k].1)).collect())
                .collect(),
        })
    }
}

/// The bytes an event's row takes in the insert's packet, generously estimated.
fn event_size(event: &NewEvent, aggregate_type_len: usize) -> usize {
    // Tags go in as a JSON array: quotes, commas and escapes (at most 6 bytes per byte).
    let tags: usize = event.tags.iter().map(|t| t.len() * 6 + 3).sum();
    let metadata = event.metadata.as_ref().map_or(0, |m| m.to_string().len());
    event.event_type.len()
        + event.bounded_context.as_ref().map_or(0, String::len)
        + aggregate_type_len
        + tags
        + event.payload.len()
        + metadata
        + EVENT_PLACEHOLDERS * VALUE_OVERHEAD
}

/// Splits rows of `sizes` bytes into chunks within `budget` bytes and the placeholder limit.
fn split(
    sizes: Vec<usize>,
    placeholders: usize,
    budget: usize,
    what: &'static str,
) -> Result<Vec<Vec<usize>>> {
    let max_rows = MAX_PLACEHOLDERS / placeholders;
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let (mut current, mut bytes) = (Vec::new(), 0);
    for (i, size) in sizes.into_iter().enumerate() {
        if size > budget {
            return Err(ValidationError::TooLong { field: what, len: size, max: budget }.into());
        }
        if !current.is_empty() && (bytes + size > budget || current.len() == max_rows) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Binds one event's row (see `insert_events.sql`).
pub(crate) fn bind_event<'q>(
    query: Query<'q, MySql, MySqlArguments>,
    event: &'q NewEvent,
    stream: Option<&'q StreamId>,
    position: Position,
    version: Option<Version>,
) -> Query<'q, MySql, MySqlArguments> {
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.as_bytes().to_vec());
    let tags = serde_json::to_string(&event.tags).unwrap_or_else(|_| "[]".into());
    let metadata = event.metadata.as_ref().map(|m| m.to_string());
    query
        .bind(position)
        .bind(event.event_id.as_bytes().as_slice())
        .bind(event.event_type.as_str())
        .bind(event.event_version)
        .bind(event.bounded_context.as_deref())
        .bind(stream.map(|s| s.aggregate_type.as_str()))
        .bind(stream.map(|s| s.aggregate_id.as_bytes().as_slice()))
        .bind(version)
        .bind(tags)
        .bind(event.payload.as_slice())
        .bind(metadata)
        .bind(id(event.trace_id))
        .bind(id(event.correlation_id))
        .bind(id(event.causation_id))
        .bind(event.stored_created_at().timestamp_micros())
        .bind(i64::from(partition_hash(stream, event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_by_bytes_and_placeholders() {
        assert_eq!(split(vec![4, 4, 4], 1, 8, "x").unwrap(), vec![vec![0, 1], vec![2]]);
        let many = split(vec![1; 5000], EVENT_PLACEHOLDERS, usize::MAX, "x").unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[0].len(), MAX_PLACEHOLDERS / EVENT_PLACEHOLDERS);
        assert!(matches!(
            split(vec![1, 9], 1, 8, "x"),
            Err(pupsourcing_core::Error::Validation(ValidationError::TooLong { len: 9, .. }))
        ));
        assert!(split(Vec::new(), 1, 8, "x").unwrap().is_empty());
    }

    #[test]
    fn an_event_too_big_for_a_packet_is_refused() {
        let big = NewEvent::new("Big", vec![0u8; 2 * 1024 * 1024]);
        let err = Chunks::plan(&[big], None, 1024 * 1024).unwrap_err();
        assert!(matches!(
            err,
            pupsourcing_core::Error::Validation(ValidationError::TooLong { .. })
        ));
        let tagged = NewEvent::new("T", vec![]).with_tags(["a", "b"]);
        let chunks = Chunks::plan(&[tagged.clone(), tagged], None, 16 * 1024 * 1024).unwrap();
        assert_eq!(chunks.events, vec![vec![0, 1]]);
        assert_eq!(chunks.tags, vec![vec![(0, 0), (0, 1), (1, 0), (1, 1)]]);
    }
}
