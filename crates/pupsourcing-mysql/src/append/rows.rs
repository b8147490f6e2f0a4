//! A batch as the write procedure takes it (`migrate/schema.sql`): JSON arrays of one object
//! per event, split into chunks that fit the server's `max_allowed_packet` (each chunk is one
//! call). The chunks are built before the append's transaction begins, from the exact length
//! of each event's JSON, so an event too big for any packet is refused up front, writing
//! nothing, never truncated or half written.

use base64::Engine;
use pupsourcing_core::projection::partition_hash;
use pupsourcing_core::{Error, NewEvent, Result, StreamId, ValidationError};
use serde::Serialize;
use uuid::Uuid;
use uuid::fmt::Simple;

/// Room left in a packet for the statement and the other parameters.
const PACKET_SLACK: usize = 64 * 1024;

/// One event of a chunk (field names as the procedure reads them).
#[derive(Serialize)]
struct EventJson<'a> {
    id: Simple,
    t: &'a str,
    v: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<&'a str>,
    /// The tags as the events table stores them (JSON text).
    tj: String,
    tags: &'a [String],
    /// The payload in base64.
    p: String,
    /// The metadata as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tr: Option<Simple>,
    #[serde(skip_serializing_if = "Option::is_none")]
    co: Option<Simple>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<Simple>,
    /// Microseconds, as a string: the server may read JSON numbers through a double.
    at: String,
    h: u32,
}

impl<'a> EventJson<'a> {
    fn new(event: &'a NewEvent, stream: Option<&StreamId>) -> Result<Self> {
        Ok(Self {
            id: event.event_id.simple(),
            t: &event.event_type,
            v: event.event_version,
            c: event.bounded_context.as_deref(),
            tj: serde_json::to_string(&event.tags).map_err(Error::database)?,
            tags: &event.tags,
            p: base64::engine::general_purpose::STANDARD.encode(&event.payload),
            m: event
                .metadata
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(Error::database)?,
            tr: event.trace_id.map(Uuid::simple),
            co: event.correlation_id.map(Uuid::simple),
            ca: event.causation_id.map(Uuid::simple),
            at: event.stored_created_at().timestamp_micros().to_string(),
            h: partition_hash(stream, event),
        })
    }
}

/// One call of the write procedure: the JSON array of some consecutive events of the batch.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Index in the batch of the chunk's first event.
    pub(crate) start: usize,
    /// How many events the chunk holds.
    pub(crate) len: usize,
    /// The JSON array.
    pub(crate) json: String,
}

/// The chunks of a batch, in batch order.
#[derive(Debug, Default)]
pub(crate) struct Chunks(pub(crate) Vec<Chunk>);

impl Chunks {
    /// Splits `events` for a server whose `max_allowed_packet` is `max_packet` bytes; fails
    /// with [`ValidationError::TooLong`] when one event alone cannot fit a packet.
    pub(crate) fn plan(
        events: &[NewEvent],
        stream: Option<&StreamId>,
        max_packet: usize,
    ) -> Result<Self> {
        let budget = max_packet.saturating_sub(PACKET_SLACK).max(1);
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut current = Chunk { start: 0, len: 0, json: String::from("[") };
        for (i, event) in events.iter().enumerate() {
            let json =
                serde_json::to_string(&EventJson::new(event, stream)?).map_err(Error::database)?;
            if json.len() + 2 > budget {
                let field = "event (as sent to the server, against its max_allowed_packet)";
                return Err(ValidationError::TooLong { field, len: json.len(), max: budget }.into());
            }
            if current.len > 0 && current.json.len() + json.len() + 2 > budget {
                current.json.push(']');
                let next = Chunk { start: i, len: 0, json: String::from("[") };
                chunks.push(std::mem::replace(&mut current, next));
            }
            if current.len > 0 {
                current.json.push(',');
            }
            current.json.push_str(&json);
            current.len += 1;
        }
        if current.len > 0 {
            current.json.push(']');
            chunks.push(current);
        }
        Ok(Self(chunks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_too_big_for_a_packet_is_refused() {
        let big = NewEvent::new("Big", vec![0u8; 2 * 1024 * 1024]);
        let err = Chunks::plan(&[big], None, 1024 * 1024).unwrap_err();
        assert!(matches!(err, Error::Validation(ValidationError::TooLong { .. })), "{err:?}");
    }

    #[test]
    fn batches_split_by_bytes_in_order() {
        let event = |n: usize| NewEvent::new("E", vec![1u8; n]).with_tags(["a", "b"]);
        let one = Chunks::plan(&[event(10), event(10)], None, 1 << 24).unwrap();
        assert_eq!(one.0.len(), 1);
        let json: serde_json::Value = serde_json::from_str(&one.0[0].json).unwrap();
        assert_eq!(json[1]["tags"], serde_json::json!(["a", "b"]));
        assert_eq!(json[1]["tj"], r#"["a","b"]"#);
        assert!(json[0].get("m").is_none() && json[0]["at"].is_string());
        let events: Vec<_> = (0..5).map(|_| event(40 * 1024)).collect();
        let split = Chunks::plan(&events, None, PACKET_SLACK + 128 * 1024).unwrap();
        assert!(split.0.len() > 1);
        let starts: Vec<_> = split.0.iter().map(|c| (c.start, c.len)).collect();
        let mut next = 0;
        for (start, len) in starts {
            assert_eq!(start, next);
            next += len;
        }
        assert_eq!(next, 5);
        for chunk in &split.0 {
            let parsed: Vec<serde_json::Value> = serde_json::from_str(&chunk.json).unwrap();
            assert_eq!(parsed.len(), chunk.len);
        }
    }
}
