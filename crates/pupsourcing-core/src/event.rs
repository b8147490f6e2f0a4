//! The event model shared by every write path: what callers append ([`NewEvent`]) and what the
//! store gives back ([`RecordedEvent`]).

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A position in the global log: strictly positive, strictly increasing in commit-visible order.
/// Gaps are allowed (rolled-back appends consume positions).
pub type Position = i64;

/// The version of an aggregate stream: the number of events in it. A stream that does not exist
/// has version 0; its first event gets version 1.
pub type Version = i64;

/// Identifies one aggregate stream: an aggregate type and the aggregate's UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The aggregate type, for example `"Order"`.
    pub aggregate_type: String,
    /// The aggregate's identifier.
    pub aggregate_id: Uuid,
}

impl StreamId {
    /// Names the stream of aggregate `aggregate_id` of type `aggregate_type`.
    pub fn new(aggregate_type: impl Into<String>, aggregate_id: Uuid) -> Self {
        Self { aggregate_type: aggregate_type.into(), aggregate_id }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

/// An event to append. Build it with [`NewEvent::new`] or [`NewEvent::json`] and refine it with
/// the `with_*` methods; the store assigns its position (and version, in a stream).
///
/// ```
/// use pupsourcing_core::NewEvent;
/// #[derive(serde::Serialize)]
/// struct Opened { owner: String }
///
/// let event = NewEvent::json("AccountOpened", &Opened { owner: "ada".into() })
///     .unwrap()
///     .with_bounded_context("banking")
///     .with_tags(["account:42"]);
/// assert_eq!(event.event_type, "AccountOpened");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id and idempotency key; a UUIDv7 by default.
    pub event_id: Uuid,
    /// The event's name, for example `"OrderPlaced"`.
    pub event_type: String,
    /// Schema version of the payload, for upcasting (default 1).
    pub event_version: i32,
    /// Bounded context the event belongs to, used to scope projections.
    pub bounded_context: Option<String>,
    /// Opaque tags, often `key:value` (used by DCB queries).
    pub tags: Vec<String>,
    /// Opaque payload bytes; see [`NewEvent::json`] for serde JSON.
    pub payload: Vec<u8>,
    /// Optional JSON metadata.
    pub metadata: Option<serde_json::Value>,
    /// Optional trace id.
    pub trace_id: Option<Uuid>,
    /// Optional correlation id.
    pub correlation_id: Option<Uuid>,
    /// Optional causation id.
    pub causation_id: Option<Uuid>,
    /// When the event happened (defaults to now).
    pub created_at: DateTime<Utc>,
    /// What decides the event's projection partition, when not its aggregate (see
    /// [`crate::projection::partition_hash`]). Only its hash is stored.
    pub partition_key: Option<String>,
}

impl NewEvent {
    /// An event of `event_type` with raw payload bytes, a fresh UUIDv7 id and `created_at` now.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            event_version: 1,
            bounded_context: None,
            tags: Vec::new(),
            payload: payload.into(),
            metadata: None,
            trace_id: None,
            correlation_id: None,
            causation_id: None,
            created_at: whole_micros(Utc::now()),
            partition_key: None,
        }
    }

    /// Sets the key that decides the event's projection partition: events with one key land in
    /// one partition, in order. Without it, an aggregate's events share their aggregate's
    /// partition and other events are spread by event id.
    pub fn with_partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// An event whose payload is `data` serialized as JSON.
    ///
    /// Fails with [`Error::Payload`] when `data` cannot be serialized (a map with non-string
    /// keys, for example).
    pub fn json<T: Serialize + ?Sized>(event_type: impl Into<String>, data: &T) -> Result<Self> {
        let payload = serde_json::to_vec(data).map_err(Error::Payload)?;
        Ok(Self::new(event_type, payload))
    }

    /// Sets the event id (the idempotency key).
    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// Sets the payload schema version.
    pub fn with_event_version(mut self, version: i32) -> Self {
        self.event_version = version;
        self
    }

    /// Sets the bounded context.
    pub fn with_bounded_context(mut self, context: impl Into<String>) -> Self {
        self.bounded_context = Some(context.into());
        self
    }

    /// Replaces the tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the JSON metadata.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Sets the trace id.
    pub fn with_trace_id(mut self, id: Uuid) -> Self {
        self.trace_id = Some(id);
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets when the event happened, truncated to whole microseconds as the log stores it.
    pub fn with_created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = whole_micros(at);
        self
    }

    /// `created_at` as every backend stores it: truncated to whole microseconds (towards the
    /// past, also before 1970). Backends bind this, never the raw field, so that an event reads
    /// back with the same timestamp everywhere.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let mut event = pupsourcing_core::NewEvent::new("Happened", vec![]);
    /// event.created_at = Utc.timestamp_opt(-1, 999_999_999).unwrap();
    /// assert_eq!(event.stored_created_at(), Utc.timestamp_opt(-1, 999_999_000).unwrap());
    /// ```
    pub fn stored_created_at(&self) -> DateTime<Utc> {
        whole_micros(self.created_at)
    }
}

/// `at` truncated to whole microseconds. Chrono keeps sub-second nanoseconds non-negative,
/// so truncating them rounds towards the past on both sides of 1970.
fn whole_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Its position in the global log.
    pub position: Position,
    /// Unique id (idempotency key).
    pub event_id: Uuid,
    /// The event's name.
    pub event_type: String,
    /// Payload schema version.
    pub event_version: i32,
    /// Bounded context, if any.
    pub bounded_context: Option<String>,
    /// The aggregate stream and the version within it, when the event belongs to one.
    pub stream: Option<(StreamId, Version)>,
    /// Tags, in the order they were appended.
    pub tags: Vec<String>,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// JSON metadata, if any.
    pub metadata: Option<serde_json::Value>,
    /// Trace id, if any.
    pub trace_id: Option<Uuid>,
    /// Correlation id, if any.
    pub correlation_id: Option<Uuid>,
    /// Causation id, if any.
    pub causation_id: Option<Uuid>,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Deserializes the payload as JSON into `T`.
    ///
    /// Fails with [`Error::Payload`] when the payload is not valid JSON for `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(Error::Payload)
    }

    /// The aggregate version, when the event belongs to a stream.
    pub fn aggregate_version(&self) -> Option<Version> {
        self.stream.as_ref().map(|(_, v)| *v)
    }

    /// `event` as a read returns it once stored at `position` outside any stream (a DCB
    /// append): every field as given, `created_at` as stored (whole microseconds).
    pub fn stored_at(event: &NewEvent, position: Position) -> Self {
        Self {
            position,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            event_version: event.event_version,
            bounded_context: event.bounded_context.clone(),
            stream: None,
            tags: event.tags.clone(),
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            trace_id: event.trace_id,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            created_at: event.stored_created_at(),
        }
    }
}
