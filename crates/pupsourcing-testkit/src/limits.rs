//! The edges of what the log accepts: everything validation lets through is stored and read
//! back by every read path, and everything a backend would reject or mangle is refused up
//! front, identically on every backend, with nothing written.
//!
//! These tests take a store factory (`make(config)`), since they run with more than one
//! configuration of limits.

use std::future::Future;

use chrono::{DateTime, Utc};
use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, Query, QueryItem, ReadOptions,
};
use pupsourcing_core::{
    Error, EventStore, ExpectedVersion, Limits, NewEvent, RecordedEvent, StoreConfig, StreamId,
    ValidationError, VersionRange, storable_timestamps,
};
use serde_json::Value;
use uuid::Uuid;

/// `len` bytes of text, mostly two-byte characters, so that limits are seen to count bytes.
fn text(prefix: &str, len: usize) -> String {
    let mut s = String::from(prefix);
    while s.len() + 2 <= len {
        s.push('é');
    }
    while s.len() < len {
        s.push('x');
    }
    s
}

/// JSON metadata nesting objects and arrays exactly `depth` levels deep, with non-ASCII text.
fn nested(depth: usize) -> Value {
    let mut value = Value::String("leaf ü 🦀".into());
    for i in 0..depth {
        value = if i % 2 == 0 {
            Value::Object([(format!("k{i}"), value)].into_iter().collect())
        } else {
            Value::Array(vec![value, Value::from(i)])
        };
    }
    value
}

/// An event with every field at its limit: longest names, most tags of the longest length,
/// deepest metadata, the extreme payload versions, and `at` as its timestamp.
fn event_at_limits(limits: &Limits, at: DateTime<Utc>, marker: &str) -> NewEvent {
    let tags =
        (0..limits.max_tags_per_event).map(|i| text(&format!("{marker}{i}:"), limits.max_tag_len));
    NewEvent::new(text(marker, limits.max_name_len), vec![0u8, 255, 0])
        .with_event_version(i32::MIN)
        .with_bounded_context(text("context", limits.max_name_len))
        .with_tags(tags)
        .with_metadata(nested(limits.max_metadata_depth))
        .with_trace_id(Uuid::now_v7())
        .with_created_at(at)
}

fn assert_same(got: &RecordedEvent, sent: &NewEvent) {
    assert_eq!(got.event_id, sent.event_id);
    assert_eq!(got.event_type, sent.event_type);
    assert_eq!(got.event_version, sent.event_version);
    assert_eq!(got.bounded_context, sent.bounded_context);
    let (mut got_tags, mut sent_tags) = (got.tags.clone(), sent.tags.clone());
    got_tags.sort();
    sent_tags.sort();
    assert_eq!(got_tags, sent_tags);
    assert_eq!(got.payload, sent.payload);
    assert_eq!(got.metadata, sent.metadata);
    assert_eq!(got.trace_id, sent.trace_id);
    assert_eq!(got.created_at, sent.created_at);
}

/// With the default limits and with every limit at its ceiling: events at every limit (two
/// in a stream with the longest aggregate type, at the first and last storable timestamps;
/// one appended through DCB) read back unchanged through `read_all`, `read_stream` and a DCB
/// `read`, and queries and conditions at their limits run.
pub async fn events_at_every_limit_read_back<S, F, Fut>(make: F)
where
    S: DcbStore,
    F: Fn(StoreConfig) -> Fut,
    Fut: Future<Output = Option<S>>,
{
    for limits in [Limits::default(), Limits::CEILING] {
        let config = StoreConfig { limits, ..StoreConfig::default() };
        let Some(store) = make(config).await else { return };
        let range = storable_timestamps();
        let stream = StreamId::new(text("Agg", limits.max_name_len), Uuid::now_v7());
        let first = event_at_limits(&limits, *range.start(), "a");
        let last = event_at_limits(&limits, *range.end(), "b").with_event_version(i32::MAX);
        let sent = [first.clone(), last.clone()];
        store.append(&stream, ExpectedVersion::NoStream, &sent).await.unwrap();
        let dcb = event_at_limits(&limits, Utc::now(), "c");
        store.append_if(std::slice::from_ref(&dcb), None).await.unwrap();

        let all = store.read_all(1, 10).await.unwrap();
        assert_eq!(all.len(), 3, "read_all with limits {limits:?}");
        for (got, sent) in all.iter().zip([&first, &last, &dcb]) {
            assert_same(got, sent);
        }
        let in_stream = store.read_stream(&stream, VersionRange::all()).await.unwrap();
        assert_eq!(in_stream.len(), 2);
        assert_same(&in_stream[0], &first);
        assert_same(&in_stream[1], &last);
        assert_eq!(in_stream[1].stream, Some((stream.clone(), 2)));

        // A DCB read by the longest tag and type, inside a query with the most items: one with
        // the most types, one with the most tags (the event's), the others small.
        let types = (0..limits.max_query_types_per_item).map(|t| format!("T{t}"));
        let mut items = vec![QueryItem::types(types)];
        items.extend((2..limits.max_query_items).map(|i| QueryItem::tags([format!("t{i}")])));
        items.push(QueryItem::types([dcb.event_type.clone()]).with_tags(dcb.tags.clone()));
        let query = Query::from_items(items);
        let read = store.read(&query, ReadOptions::new()).await.unwrap();
        assert_eq!(read.events.len(), 1, "DCB read with limits {limits:?}");
        assert_same(&read.events[0], &dcb);

        // A condition of the same size is checked (and fails on the event it matches).
        let condition = AppendCondition::none_after(query, 0);
        let refused = store.append_if(&[NewEvent::new("X", vec![])], Some(&condition)).await;
        assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
        let passes = AppendCondition::none_after(condition.fail_if_events_match, read.head);
        store.append_if(&[NewEvent::new("X", vec![])], Some(&passes)).await.unwrap();
    }
}

/// Which validation error a case expects.
type Expected = fn(&ValidationError) -> bool;

/// Every input a backend would reject or store unreadably gets the same typed error on every
/// backend, and nothing is written.
pub async fn unstorable_input_is_refused<S, F, Fut>(make: F)
where
    S: DcbStore,
    F: Fn(StoreConfig) -> Fut,
    Fut: Future<Output = Option<S>>,
{
    let Some(store) = make(StoreConfig::default()).await else { return };
    let limits = Limits::default();
    let ok = || NewEvent::new("Ok", vec![]);
    let nul = "a\0b";
    let mut before_year_1 = ok();
    before_year_1.created_at = *storable_timestamps().start() - chrono::TimeDelta::seconds(1);
    let mut after_9999 = ok();
    after_9999.created_at = *storable_timestamps().end() + chrono::TimeDelta::seconds(1);
    let too_many_tags = ok().with_tags((0..=limits.max_tags_per_event).map(|i| format!("t{i}")));
    let cases: Vec<(NewEvent, Expected)> = vec![
        (NewEvent::new(nul, vec![]), |e| matches!(e, ValidationError::NulCharacter { .. })),
        (ok().with_bounded_context(nul), |e| matches!(e, ValidationError::NulCharacter { .. })),
        (ok().with_tags([nul]), |e| matches!(e, ValidationError::NulCharacter { .. })),
        (ok().with_metadata(serde_json::json!({ "k": nul })), |e| {
            matches!(e, ValidationError::NulCharacter { field: "metadata" })
        }),
        (ok().with_metadata(serde_json::json!({ nul: 1 })), |e| {
            matches!(e, ValidationError::NulCharacter { field: "metadata" })
        }),
        (ok().with_metadata(nested(limits.max_metadata_depth + 1)), |e| {
            matches!(e, ValidationError::TooDeep { .. })
        }),
        (ok().with_metadata(nested(500)), |e| matches!(e, ValidationError::TooDeep { .. })),
        (before_year_1, |e| matches!(e, ValidationError::TimestampOutOfRange { .. })),
        (after_9999, |e| matches!(e, ValidationError::TimestampOutOfRange { .. })),
        (too_many_tags, |e| matches!(e, ValidationError::TooMany { .. })),
    ];
    let stream = StreamId::new("Account", Uuid::now_v7());
    for (event, expected) in &cases {
        let batch = [ok(), event.clone()];
        for result in [
            store.append(&stream, ExpectedVersion::Any, &batch).await,
            store.append_if(&batch, None).await,
        ] {
            match result {
                Err(Error::Validation(e)) if expected(&e) => {}
                other => panic!("{event:?} gave {other:?}"),
            }
        }
    }
    let nul_stream = StreamId::new(nul, Uuid::now_v7());
    let result = store.append(&nul_stream, ExpectedVersion::Any, &[ok()]).await;
    assert!(matches!(result, Err(Error::Validation(ValidationError::NulCharacter { .. }))));

    // Queries beyond their limits, in reads and in conditions.
    let many_items =
        Query::from_items((0..=limits.max_query_items).map(|i| QueryItem::tags([format!("t{i}")])));
    let many_types = Query::from_items([QueryItem::types(
        (0..=limits.max_query_types_per_item).map(|i| format!("T{i}")),
    )]);
    let many_tags = Query::from_items([QueryItem::tags(
        (0..=limits.max_tags_per_event).map(|i| format!("t{i}")),
    )]);
    let nul_type = Query::from_items([QueryItem::types([nul])]);
    let nul_tag = Query::from_items([QueryItem::tags([nul])]);
    for query in [many_items, many_types, many_tags, nul_type, nul_tag] {
        let read = store.read(&query, ReadOptions::new()).await;
        assert!(matches!(read, Err(Error::Validation(_))), "{read:?}");
        let condition = AppendCondition::none_match(query);
        let append = store.append_if(&[ok()], Some(&condition)).await;
        assert!(matches!(append, Err(Error::Validation(_))), "{append:?}");
    }

    // Command records.
    let mut tx = store.begin().await.unwrap();
    let record = CommandRecord {
        command_type: "Do".into(),
        data: serde_json::json!({ "x": nul }),
        metadata: None,
        positions: vec![],
    };
    let recorded = store.record_command_in(&mut tx, &record).await;
    assert!(matches!(recorded, Err(Error::Validation(ValidationError::NulCharacter { .. }))));
    drop(tx);

    assert_eq!(store.head().await.unwrap(), 0, "a refused append wrote something");

    // Limits beyond what a backend can index are refused before anything is written.
    let beyond = Limits { max_tag_len: Limits::CEILING.max_tag_len + 1, ..Limits::default() };
    let config = StoreConfig { limits: beyond, ..StoreConfig::default() };
    let Some(store) = make(config).await else { return };
    let result = store.append(&stream, ExpectedVersion::Any, &[ok()]).await;
    assert!(
        matches!(result, Err(Error::Validation(ValidationError::InvalidLimit { .. }))),
        "{result:?}"
    );
    assert_eq!(store.head().await.unwrap(), 0);
}

/// A stream's version cannot pass `i64::MAX`: the append that reaches it exactly is reported
/// without overflowing, and every later one gets the typed `OutOfRange` error, writing nothing.
/// `set_version(store, stream, version)` moves the stream's head by hand (backend SQL), since no
/// test can append 2^63 events.
pub async fn versions_stop_at_the_largest_integer<S, F, Fut>(store: S, set_version: F)
where
    S: EventStore,
    F: Fn(S, StreamId, i64) -> Fut,
    Fut: Future<Output = ()>,
{
    let stream = StreamId::new("Account", Uuid::now_v7());
    let event = |t: &str| NewEvent::new(t, b"{}".to_vec());
    store.append(&stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    set_version(store.clone(), stream.clone(), i64::MAX - 1).await;
    let last = store.append(&stream, ExpectedVersion::Any, &[event("B")]).await.unwrap();
    assert_eq!(last.versions, vec![i64::MAX]);
    for batch in [vec![event("C")], vec![event("C"), event("D")]] {
        let err = store.append(&stream, ExpectedVersion::Any, &batch).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Validation(ValidationError::OutOfRange { field: "aggregate version", .. })
            ),
            "{err:?}"
        );
    }
    assert_eq!(store.read_stream(&stream, VersionRange::all()).await.unwrap().len(), 2);
}
