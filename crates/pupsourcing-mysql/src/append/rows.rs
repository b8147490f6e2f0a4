//! A batch as the write procedure takes it (`migrate/schema.sql`): JSON arrays of one object
//! per event, split into chunks that fit the server's `max_allowed_packet` (each chunk is one
//! call, or one group's share of a call). Each object carries its event's stream; its version
//! is only known under the stream's head lock, so it is spliced in when the array is rendered
//! ([`Chunk::render`]). The chunks are built before the append's transaction begins, from the
//! exact length of each event's JSON (plus room for the version), so an event too big for any
//! packet is refused up front, writing nothing, never truncated or half written.

use base64::Engine;
use pupsourcing_core::projection::partition_hash;
use pupsourcing_core::{Error, NewEvent, Result, StreamId, ValidationError};
use serde::Serialize;
use uuid::Uuid;
use uuid::fmt::Simple;

/// Room left in a packet for the statement and the other parameters.
const PACKET_SLACK: usize = 64 * 1024;

/// Room for the version spliced into an event's object: `"sv":"<i64>",`.
const VERSION_ROOM: usize = 32;

/// One event of a chunk (field names as the procedure reads them), without its version.
#[derive(Serialize)]
struct EventJson<'a> {
    id: Simple,
    /// The stream's aggregate type and id (absent on the DCB path).
    #[serde(skip_serializing_if = "Option::is_none")]
    st: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<Simple>,
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
    fn new(event: &'a NewEvent, stream: Option<&'a StreamId>) -> Result<Self> {
        Ok(Self {
            id: event.event_id.simple(),
            st: stream.map(|s| s.aggregate_type.as_str()),
            sid: stream.map(|s| s.aggregate_id.simple()),
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

/// Some consecutive events of the batch, each a JSON object, that fit one call of the write
/// procedure.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Index in the batch of the chunk's first event.
    pub(crate) start: usize,
    /// The events' JSON objects, without their versions.
    pub(crate) events: Vec<String>,
    /// Bytes the chunk takes in the procedure's JSON array, versions included.
    pub(crate) bytes: usize,
}

impl Chunk {
    fn new(start: usize) -> Self {
        Self { start, events: Vec::new(), bytes: 2 }
    }

    /// How many events the chunk holds.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Appends the chunk's objects to `array` (a JSON array being built), each with its stream
    /// version when `first_version` (the version of the chunk's first event) is given.
    pub(crate) fn render(&self, array: &mut String, first_version: Option<i64>) {
        for (i, event) in self.events.iter().enumerate() {
            array.push(if array.is_empty() { '[' } else { ',' });
            match first_version {
                // `event` is `{"id":...}`: the version goes first. As a string: the server
                // may read JSON numbers through a double.
                Some(first) => {
                    array.push_str(&format!("{{\"sv\":\"{}\",", first + i as i64));
                    array.push_str(&event[1..]);
                }
                None => array.push_str(event),
            }
        }
    }
}

/// The bytes a chunk may take on a server whose `max_allowed_packet` is `max_packet`.
pub(crate) fn budget(max_packet: usize) -> usize {
    max_packet.saturating_sub(PACKET_SLACK).max(1)
}

/// Closes a JSON array [`Chunk::render`] built.
pub(crate) fn close_array(array: &mut String) {
    if array.is_empty() {
        array.push('[');
    }
    array.push(']');
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
        let budget = budget(max_packet);
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut current = Chunk::new(0);
        for (i, event) in events.iter().enumerate() {
            let json =
                serde_json::to_string(&EventJson::new(event, stream)?).map_err(Error::database)?;
            let bytes = json.len() + VERSION_ROOM + 1;
            if bytes + 2 > budget {
                let field = "event (as sent to the server, against its max_allowed_packet)";
                return Err(ValidationError::TooLong { field, len: json.len(), max: budget }.into());
            }
            if current.len() > 0 && current.bytes + bytes > budget {
                chunks.push(std::mem::replace(&mut current, Chunk::new(i)));
            }
            current.events.push(json);
            current.bytes += bytes;
        }
        if current.len() > 0 {
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

    fn parse(chunk: &Chunk, first_version: Option<i64>) -> Vec<serde_json::Value> {
        let mut array = String::new();
        chunk.render(&mut array, first_version);
        close_array(&mut array);
        assert!(array.len() <= chunk.bytes, "{} > {}", array.len(), chunk.bytes);
        serde_json::from_str(&array).unwrap()
    }

    #[test]
    fn batches_split_by_bytes_in_order() {
        let event = |n: usize| NewEvent::new("E", vec![1u8; n]).with_tags(["a", "b"]);
        let one = Chunks::plan(&[event(10), event(10)], None, 1 << 24).unwrap();
        assert_eq!(one.0.len(), 1);
        let json = parse(&one.0[0], None);
        assert_eq!(json[1]["tags"], serde_json::json!(["a", "b"]));
        assert_eq!(json[1]["tj"], r#"["a","b"]"#);
        assert!(json[0].get("m").is_none() && json[0]["at"].is_string());
        assert!(json[0].get("st").is_none() && json[0].get("sv").is_none());
        let events: Vec<_> = (0..5).map(|_| event(40 * 1024)).collect();
        let split = Chunks::plan(&events, None, PACKET_SLACK + 128 * 1024).unwrap();
        assert!(split.0.len() > 1);
        let mut next = 0;
        for chunk in &split.0 {
            assert_eq!(chunk.start, next);
            next += chunk.len();
            assert_eq!(parse(chunk, None).len(), chunk.len());
        }
        assert_eq!(next, 5);
    }

    #[test]
    fn stream_events_carry_their_stream_and_versions() {
        let stream = StreamId::new("Order", Uuid::new_v4());
        let events: Vec<_> = (0..3).map(|_| NewEvent::new("E", b"{}".to_vec())).collect();
        let chunks = Chunks::plan(&events, Some(&stream), 1 << 24).unwrap();
        let json = parse(&chunks.0[0], Some(i64::MAX - 2));
        assert_eq!(json[0]["st"], "Order");
        assert_eq!(json[2]["sid"], stream.aggregate_id.simple().to_string());
        assert_eq!(json[0]["sv"], (i64::MAX - 2).to_string());
        assert_eq!(json[2]["sv"], i64::MAX.to_string());
    }
}
