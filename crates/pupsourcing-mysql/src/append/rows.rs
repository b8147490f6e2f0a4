//! A batch as the write statements take it (`append/write.rs`): each event's row of the events
//! table and its tag index rows, rendered as SQL literals (`append/literal.rs`), split into
//! chunks that fit the server's `max_allowed_packet` (each chunk is one round trip, or one
//! group's share of one).
//!
//! An event's position (and, in a stream, its version) is only known under the counter's (and
//! the head's) lock, so it is spliced in when the rows are rendered ([`Rows::push`]): the
//! position as `LAST_INSERT_ID()-d`, `d` the event's distance from the last position the
//! chunk's counter statement took. The chunks are built before the append's transaction begins,
//! from the exact length of each event's literals (plus room for the position and version), so
//! an event too big for any packet is refused up front, writing nothing, never truncated or half
//! written.

use pupsourcing_core::projection::partition_hash;
use pupsourcing_core::{Error, NewEvent, Result, StreamId, ValidationError};

use super::literal;

/// Room left in a packet for the statements' own text and a group's other statements.
const PACKET_SLACK: usize = 64 * 1024;

/// Room for a position spliced into a row: `LAST_INSERT_ID()-<distance>` and a comma.
const POSITION_ROOM: usize = 40;

/// Room for a version spliced into a row: an i64 and a comma.
const VERSION_ROOM: usize = 24;

/// Room for the head statement of a stream besides its two literals (`append/write.rs`).
const HEAD_ROOM: usize = 256;

/// One event's rows, rendered but for its position and version.
#[derive(Debug)]
struct EventRows {
    /// The events row's columns after the position and before the stream's:
    /// `,X'id',X'type',version,context`.
    head: String,
    /// The columns after the stream's, with the closing parenthesis:
    /// `,tags,payload,metadata,trace,correlation,causation,created_at,hash)`.
    tail: String,
    /// Each tag index row's start: `(X'tag',`; the position and `tag_tail` follow.
    tags: Vec<String>,
    /// Each tag index row's end: `,X'type')`.
    tag_tail: String,
}

impl EventRows {
    fn new(event: &NewEvent, stream: Option<&StreamId>) -> Result<Self> {
        let mut head = String::from(",");
        literal::bytes(&mut head, event.event_id.as_bytes());
        head.push(',');
        literal::bytes(&mut head, event.event_type.as_bytes());
        head.push(',');
        literal::int(&mut head, i64::from(event.event_version));
        head.push(',');
        literal::bytes_or_null(&mut head, event.bounded_context.as_deref().map(str::as_bytes));
        let mut tail = String::from(",");
        literal::text(&mut tail, &serde_json::to_string(&event.tags).map_err(Error::database)?);
        tail.push(',');
        literal::bytes(&mut tail, &event.payload);
        tail.push(',');
        let metadata = event.metadata.as_ref().map(serde_json::to_string).transpose();
        literal::text_or_null(&mut tail, metadata.map_err(Error::database)?.as_deref());
        for id in [event.trace_id, event.correlation_id, event.causation_id] {
            tail.push(',');
            literal::bytes_or_null(&mut tail, id.as_ref().map(|id| id.as_bytes().as_slice()));
        }
        tail.push(',');
        literal::int(&mut tail, event.stored_created_at().timestamp_micros());
        tail.push(',');
        literal::int(&mut tail, i64::from(partition_hash(stream, event)));
        tail.push(')');
        let tags = event
            .tags
            .iter()
            .map(|tag| {
                let mut row = String::from("(");
                literal::bytes(&mut row, tag.as_bytes());
                row.push(',');
                row
            })
            .collect();
        let mut tag_tail = String::from(",");
        literal::bytes(&mut tag_tail, event.event_type.as_bytes());
        tag_tail.push(')');
        Ok(Self { head, tail, tags, tag_tail })
    }

    /// Bytes the event's rows take once rendered, at most, besides its stream's literals.
    fn bytes(&self, stream: usize) -> usize {
        let event =
            1 + POSITION_ROOM + self.head.len() + 1 + stream + VERSION_ROOM + self.tail.len();
        let tags: usize =
            self.tags.iter().map(|t| t.len() + POSITION_ROOM + self.tag_tail.len() + 1).sum();
        event + 1 + tags
    }
}

/// The literals naming a stream: its aggregate type and its id, each `X'..'`.
pub(crate) fn stream_parts(stream: &StreamId) -> (String, String) {
    let (mut kind, mut id) = (String::new(), String::new());
    literal::bytes(&mut kind, stream.aggregate_type.as_bytes());
    literal::bytes(&mut id, stream.aggregate_id.as_bytes());
    (kind, id)
}

/// The literals naming a stream as two columns: `X'..',X'..'`.
pub(crate) fn stream_literals(stream: &StreamId) -> String {
    let (kind, id) = stream_parts(stream);
    format!("{kind},{id}")
}

/// Some consecutive events of the batch, rendered, that fit one round trip.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Index in the batch of the chunk's first event.
    pub(crate) start: usize,
    events: Vec<EventRows>,
    /// The stream's literals ([`stream_literals`]), or `NULL,NULL` outside a stream.
    stream: String,
    /// Bytes the chunk's rows (and its stream's head statement) take at most.
    pub(crate) bytes: usize,
}

impl Chunk {
    fn new(start: usize, stream: &str, in_stream: bool) -> Self {
        let head = if in_stream { 2 * stream.len() + HEAD_ROOM } else { 0 };
        Self { start, events: Vec::new(), stream: stream.to_string(), bytes: head }
    }

    /// How many events the chunk holds.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }
}

/// The rows of one counter statement's positions: the events rows and the tag index rows of
/// one or more chunks, in position order.
#[derive(Debug)]
pub(crate) struct Rows {
    /// How many positions the counter statement takes: every event's, in all the chunks.
    pub(crate) count: usize,
    /// Events rendered so far.
    done: usize,
    /// The events table's rows, comma-separated.
    pub(crate) events: String,
    /// The tag index rows, comma-separated (empty when no event has tags).
    pub(crate) tags: String,
}

impl Rows {
    /// Rows for `count` events, with room for `bytes` (the chunks' [`Chunk::bytes`]).
    pub(crate) fn new(count: usize, bytes: usize) -> Self {
        Self { count, done: 0, events: String::with_capacity(bytes), tags: String::new() }
    }

    /// Appends `chunk`'s rows, each event at the next position and, in a stream, at the next
    /// version from `first_version` (the version of the chunk's first event).
    pub(crate) fn push(&mut self, chunk: &Chunk, first_version: Option<i64>) {
        for (i, event) in chunk.events.iter().enumerate() {
            let position = self.position();
            self.done += 1;
            if !self.events.is_empty() {
                self.events.push(',');
            }
            self.events.push('(');
            self.events.push_str(&position);
            self.events.push_str(&event.head);
            self.events.push(',');
            self.events.push_str(&chunk.stream);
            self.events.push(',');
            match first_version {
                Some(first) => literal::int(&mut self.events, first + i as i64),
                None => self.events.push_str("NULL"),
            }
            self.events.push_str(&event.tail);
            for tag in &event.tags {
                if !self.tags.is_empty() {
                    self.tags.push(',');
                }
                self.tags.push_str(tag);
                self.tags.push_str(&position);
                self.tags.push_str(&event.tag_tail);
            }
        }
    }

    /// The next event's position: the counter's new value (`LAST_INSERT_ID()`, set by the
    /// counter statement) less the events still to come after it.
    fn position(&self) -> String {
        match self.count.saturating_sub(self.done + 1) {
            0 => "LAST_INSERT_ID()".to_string(),
            distance => format!("LAST_INSERT_ID()-{distance}"),
        }
    }
}

/// The bytes a chunk may take on a server whose `max_allowed_packet` is `max_packet`.
pub(crate) fn budget(max_packet: usize) -> usize {
    max_packet.saturating_sub(PACKET_SLACK).max(1)
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
        let literals = stream.map_or_else(|| "NULL,NULL".to_string(), stream_literals);
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut current = Chunk::new(0, &literals, stream.is_some());
        for (i, event) in events.iter().enumerate() {
            let rows = EventRows::new(event, stream)?;
            let bytes = rows.bytes(literals.len());
            if Chunk::new(i, &literals, stream.is_some()).bytes + bytes > budget {
                let field = "event (as sent to the server, against its max_allowed_packet)";
                return Err(ValidationError::TooLong { field, len: bytes, max: budget }.into());
            }
            if current.len() > 0 && current.bytes + bytes > budget {
                let next = Chunk::new(i, &literals, stream.is_some());
                chunks.push(std::mem::replace(&mut current, next));
            }
            current.events.push(rows);
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
    use uuid::Uuid;

    #[test]
    fn an_event_too_big_for_a_packet_is_refused() {
        let big = NewEvent::new("Big", vec![0u8; 600 * 1024]);
        let err = Chunks::plan(&[big], None, 1024 * 1024).unwrap_err();
        assert!(matches!(err, Error::Validation(ValidationError::TooLong { .. })), "{err:?}");
    }

    fn render(chunks: &[&Chunk], first_version: Option<i64>) -> Rows {
        let count = chunks.iter().map(|c| c.len()).sum();
        let mut rows = Rows::new(count, 0);
        for chunk in chunks {
            rows.push(chunk, first_version);
            assert!(rows.events.len() + rows.tags.len() <= chunks.iter().map(|c| c.bytes).sum());
        }
        rows
    }

    #[test]
    fn batches_split_by_bytes_in_order() {
        let event = |n: usize| NewEvent::new("E", vec![1u8; n]).with_tags(["a", "b"]);
        let one = Chunks::plan(&[event(10), event(10)], None, 1 << 24).unwrap();
        assert_eq!(one.0.len(), 1);
        let rows = render(&[&one.0[0]], None);
        assert_eq!(rows.events.matches("LAST_INSERT_ID()").count(), 2);
        assert!(rows.events.starts_with("(LAST_INSERT_ID()-1,X'"), "{}", rows.events);
        assert!(rows.events.contains(",NULL,NULL,NULL,_utf8mb4 X'"), "{}", rows.events);
        // Two tags each: four index rows, the first two at the first position.
        assert_eq!(rows.tags.matches("(X'61',LAST_INSERT_ID()-1,X'45')").count(), 1);
        assert_eq!(rows.tags.matches("(X'62',LAST_INSERT_ID(),X'45')").count(), 1);
        let events: Vec<_> = (0..5).map(|_| event(20 * 1024)).collect();
        let split = Chunks::plan(&events, None, PACKET_SLACK + 128 * 1024).unwrap();
        assert!(split.0.len() > 1);
        let mut next = 0;
        for chunk in &split.0 {
            assert_eq!(chunk.start, next);
            next += chunk.len();
            assert!(chunk.bytes <= 128 * 1024);
            render(&[chunk], None);
        }
        assert_eq!(next, 5);
    }

    #[test]
    fn stream_events_carry_their_stream_and_versions() {
        let stream = StreamId::new("Order", Uuid::new_v4());
        let events: Vec<_> = (0..3).map(|_| NewEvent::new("E", b"{}".to_vec())).collect();
        let chunks = Chunks::plan(&events, Some(&stream), 1 << 24).unwrap();
        let rows = render(&[&chunks.0[0]], Some(i64::MAX - 2));
        let literals = stream_literals(&stream);
        assert!(literals.starts_with("X'4F72646572',X'"), "{literals}");
        assert_eq!(rows.events.matches(&format!("{literals},{}", i64::MAX - 2)).count(), 1);
        assert_eq!(rows.events.matches(&format!("{literals},{}", i64::MAX)).count(), 1);
        assert!(rows.tags.is_empty());
    }

    #[test]
    fn positions_count_back_across_chunks_of_one_write() {
        let event = || NewEvent::new("E", b"x".to_vec()).with_tags(["t"]);
        let a = Chunks::plan(&[event(), event()], None, 1 << 24).unwrap();
        let b = Chunks::plan(&[event()], None, 1 << 24).unwrap();
        let rows = render(&[&a.0[0], &b.0[0]], None);
        let positions: Vec<&str> =
            rows.tags.split("(X'74',").skip(1).map(|r| r.split(',').next().unwrap()).collect();
        assert_eq!(positions, ["LAST_INSERT_ID()-2", "LAST_INSERT_ID()-1", "LAST_INSERT_ID()"]);
    }
}
