//! Round trips of awkward but valid input: what passes validation must read back exactly as it
//! was appended, identically on every backend (PostgreSQL stores metadata as `json`, not
//! `jsonb`, which would rewrite numbers: `f64::MAX` as a 309-digit integer no reader parses).

use pupsourcing_core::dcb::{DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{NewEvent, RecordedEvent, storable_timestamps};
use serde_json::{Value, json};

/// Metadata values that JSON libraries and databases tend to rewrite: floats printed with an
/// exponent but integral, negative zero, extremes, escapes, unusual Unicode.
pub fn awkward_metadata() -> Vec<(&'static str, Value)> {
    vec![
        ("integral float 1e15", json!({ "x": 1e15 })),
        ("integral float 1e17", json!({ "x": 1e17 })),
        ("float 1.0", json!({ "x": 1.0 })),
        ("negative zero", json!({ "x": -0.0 })),
        ("largest f64", json!({ "x": f64::MAX })),
        ("1.7e308", json!({ "x": 1.7e308 })),
        ("1e308", json!({ "x": 1e308 })),
        ("-f64::MAX", json!({ "x": -f64::MAX })),
        ("1e300", json!({ "x": 1e300 })),
        ("smallest subnormal", json!({ "x": 5e-324 })),
        ("u64 max", json!({ "x": u64::MAX })),
        ("i64 min", json!({ "x": i64::MIN })),
        ("0.1 + 0.2", json!({ "x": 0.1 + 0.2 })),
        (
            "escapes",
            json!({ "\"\\/\u{8}\u{c}\n\r\t\u{1}\u{1f}": "\u{7f}\u{2028}\u{2029}\u{feff}" }),
        ),
        ("astral and combining", json!({ "🦀": "e\u{301} \u{10FFFF} \u{FFFD}" })),
        ("empty key", json!({ "": [] })),
        ("key order", json!({ "b": 1, "a": 2, "aa": 3, "": 4 })),
    ]
}

/// Appends one event per awkward metadata value and one with awkward names, tags and
/// timestamps, then reads them back through `read_all` and a DCB read: returns what differs
/// (empty when everything round-trips).
pub async fn awkward_input_round_trips<S: DcbStore>(store: S) -> Vec<String> {
    let mut differences = Vec::new();
    let tag = format!("rt-{}", uuid::Uuid::now_v7());
    let range = storable_timestamps();
    let sub_micro =
        |at: chrono::DateTime<chrono::Utc>, nanos: i64| at + chrono::TimeDelta::nanoseconds(nanos);
    let mut sent = Vec::new();
    for (name, metadata) in awkward_metadata() {
        sent.push((
            name.to_string(),
            NewEvent::new("Meta", b"{}".to_vec()).with_metadata(metadata),
        ));
    }
    let names = [
        ("sub-microsecond at the start", sub_micro(*range.start(), 999)),
        ("end of range, nanoseconds", *range.end() + chrono::TimeDelta::nanoseconds(999)),
        ("before 1970 with nanoseconds", sub_micro(chrono::DateTime::UNIX_EPOCH, -1)),
    ];
    for (name, at) in names {
        sent.push((name.to_string(), NewEvent::new("Time", b"".to_vec()).with_created_at(at)));
    }
    let unusual = "\u{FEFF}Type\u{200B} 🦀 e\u{301}";
    sent.push((
        "unusual names".to_string(),
        NewEvent::new(unusual, vec![0u8, 255, 0])
            .with_bounded_context("ctx\u{2028}")
            .with_event_version(i32::MIN)
            .with_tags(["{a,b}", "\"q\"", "NULL", " ", "\\"]),
    ));
    sent.push((
        "i32::MAX event version".to_string(),
        NewEvent::new("V", b"x".to_vec()).with_event_version(i32::MAX),
    ));
    let mut appended = Vec::new();
    for (name, event) in sent {
        let mut tags = event.tags.clone();
        tags.push(tag.clone());
        let event = event.with_tags(tags);
        match store.append_if(std::slice::from_ref(&event), None).await {
            Ok(r) => {
                // Each event alone first, so that an unreadable one is named.
                if let Err(err) = store.read_all(r.positions[0], 1).await {
                    differences.push(format!("{name}: stored, then read_all fails: {err}"));
                    continue;
                }
                appended.push((name, event, r.positions[0]));
            }
            Err(err) => differences.push(format!("{name}: accepted by validation, refused: {err}")),
        }
    }
    let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
    for (name, event, position) in appended {
        // One event at a time: an unreadable event fails every read that touches it.
        let all = store.read_all(position, 1).await.unwrap_or_default();
        let options = ReadOptions::new().from(position).limit(1);
        let dcb = store.read(&query, options).await.map(|r| r.events).unwrap_or_else(|err| {
            differences.push(format!("{name}: dcb read fails: {err}"));
            Vec::new()
        });
        for (path, events) in [("read_all", &all), ("dcb read", &dcb)] {
            let Some(read) = events.iter().find(|e: &&RecordedEvent| e.position == position) else {
                differences.push(format!("{name}: missing from {path}"));
                continue;
            };
            let expected_meta = event.metadata.as_ref().map(|m| m.to_string());
            let read_meta = read.metadata.as_ref().map(|m| m.to_string());
            if expected_meta != read_meta {
                differences.push(format!(
                    "{name} ({path}): metadata {expected_meta:?} read back as {read_meta:?}"
                ));
            }
            if read.created_at != event.stored_created_at() {
                differences.push(format!(
                    "{name} ({path}): created_at {} stored as {}, read back {}",
                    event.created_at,
                    event.stored_created_at(),
                    read.created_at
                ));
            }
            let (tags, read_tags) = (&event.tags, &read.tags); // order kept
            if (
                &read.event_type,
                &read.bounded_context,
                read.event_version,
                &read.payload,
                read_tags,
            ) != (
                &event.event_type,
                &event.bounded_context,
                event.event_version,
                &event.payload,
                tags,
            ) {
                differences.push(format!("{name} ({path}): fields differ: {read:?}"));
            }
        }
    }
    differences
}
