//! Rendering for people (aligned tables) and for scripts (JSON).

use std::time::Duration;

use chrono::{DateTime, Utc};
use pupsourcing_core::RecordedEvent;
use serde_json::{Value, json};

/// A table aligned for a terminal: a header row, then one row per item.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row (as many cells as headers).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, columns padded to their widest cell.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> =
                cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// `value`, or `-` when there is none.
pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A duration in seconds with one decimal, for tables.
pub fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// A duration in seconds, for JSON.
pub fn seconds_json(duration: Option<Duration>) -> Value {
    duration.map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

/// A timestamp in RFC 3339, for JSON and tables.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The payload as JSON when it parses, else as a string of its UTF-8 (lossy).
fn payload(event: &RecordedEvent) -> Value {
    serde_json::from_slice(&event.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&event.payload).into_owned()))
}

/// Every field of an event, as one JSON object.
pub fn event_json(event: &RecordedEvent) -> Value {
    let (aggregate_type, aggregate_id, version) = match &event.stream {
        Some((stream, version)) => {
            (json!(stream.aggregate_type), json!(stream.aggregate_id), json!(version))
        }
        None => (Value::Null, Value::Null, Value::Null),
    };
    json!({
        "position": event.position,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "bounded_context": event.bounded_context,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "aggregate_version": version,
        "tags": event.tags,
        "payload": payload(event),
        "metadata": event.metadata,
        "trace_id": event.trace_id,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "created_at": timestamp(event.created_at),
    })
}

/// An event on one readable line: position, time, type, stream or tags, payload.
pub fn event_line(event: &RecordedEvent) -> String {
    let mut line =
        format!("{:>8}  {}  {}", event.position, timestamp(event.created_at), event.event_type);
    if let Some(context) = &event.bounded_context {
        line.push_str(&format!(" [{context}]"));
    }
    if let Some((stream, version)) = &event.stream {
        line.push_str(&format!("  {stream}@{version}"));
    }
    if !event.tags.is_empty() {
        line.push_str(&format!("  tags={}", event.tags.join(",")));
    }
    line.push_str(&format!("  {}", payload(event)));
    line
}
