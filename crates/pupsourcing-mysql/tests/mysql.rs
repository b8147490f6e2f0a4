//! What is particular to MySQL / MariaDB: exact matching despite its collations, the schema
//! as a database, migrations, and the counter that keeps commits in position order.

mod common;

use std::time::Duration;

use pupsourcing_core::dcb::{DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId};
use pupsourcing_mysql::{MySqlEventStore, migration_sql, sqlx};

/// Tags, types and aggregate types that MySQL's default collations would take for one another
/// (case, accents, trailing spaces: MariaDB's `utf8mb4_bin` pads) are distinct in the log.
#[tokio::test]
async fn text_matches_exactly() {
    let Some(store) = common::fresh_store().await else { return };
    let names = ["tag", "Tag", "tag ", "tág", "ta\u{301}g"];
    for name in names {
        let event = NewEvent::new(name, vec![]).with_tags([name]);
        store.append_if(&[event], None).await.unwrap();
        let stream = StreamId::new(name, uuid::Uuid::nil());
        store
            .append(&stream, ExpectedVersion::NoStream, &[NewEvent::new("E", vec![])])
            .await
            .unwrap();
    }
    for name in names {
        let by_tag = Query::from_items([QueryItem::tags([name])]);
        let by_type = Query::from_items([QueryItem::types([name])]);
        for query in [by_tag, by_type] {
            let read = store.read(&query, ReadOptions::new()).await.unwrap();
            assert_eq!(read.events.len(), 1, "{name:?}");
            assert_eq!(read.events[0].event_type, name);
        }
        let stream = StreamId::new(name, uuid::Uuid::nil());
        assert_eq!(store.stream_version(&stream).await.unwrap(), 1, "{name:?}");
    }
}

/// `migrate` is idempotent, and the generated SQL names the database only when one is
/// configured (`public`, the default, is the connection's database).
#[tokio::test]
async fn migrations_are_idempotent_and_name_the_database() {
    let Some(store) = common::fresh_store().await else { return };
    store.migrate().await.unwrap();
    store
        .append(
            &pupsourcing_testkit::new_stream(),
            ExpectedVersion::Any,
            &[pupsourcing_testkit::event("A")],
        )
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.head().await.unwrap(), 1, "a second migration keeps the counter");
    let default = migration_sql(&StoreConfig::default());
    assert!(
        !default.contains("CREATE DATABASE")
            && default.contains("CREATE TABLE IF NOT EXISTS `events`")
    );
    let sql = MySqlEventStore::migration_sql(store.config());
    assert!(sql.contains(&format!("CREATE DATABASE IF NOT EXISTS `{}`", store.config().schema)));
}

/// `schema_status` reports nothing in a database never migrated, everything after `migrate`
/// (the configured tables and those named after the events and workers tables), what
/// a migration cut short left out, and, for the default schema, the connection's database.
#[tokio::test]
async fn schema_status_tells_a_migrated_database_from_an_empty_one() {
    let database = common::unique_database();
    let config = StoreConfig::default().schema(&database).unwrap().events_table("ledger").unwrap();
    let Some(store) = common::connect(config).await else { return };
    let before = store.schema_status().await.unwrap();
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(before.location, database);
    assert_eq!(before.tables.len(), 12, "8 configured, 4 derived tables");
    store.migrate().await.unwrap();
    let after = store.schema_status().await.unwrap();
    assert!(after.is_applied(), "{after:?}");
    let names: Vec<&str> = after.tables.iter().map(|t| t.name.as_str()).collect();
    let derived = ["ledger_counter", "ledger_tags", "ledger_locks", "ledger_workers_locks"];
    for name in ["ledger", "ledger_dead_letters"].iter().chain(&derived) {
        assert!(names.contains(name), "{name}: {names:?}");
    }
    assert!(!names.contains(&"ledger_write_rows"), "the write procedure is gone: {names:?}");
    // A migration cut short: the tag index and the counter missing.
    for sql in [
        format!("DROP TABLE `{database}`.ledger_tags"),
        format!("DROP TABLE `{database}`.ledger_counter"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    }
    let partial = store.schema_status().await.unwrap();
    let missing: Vec<&str> = partial.missing().map(|t| t.name.as_str()).collect();
    assert_eq!(missing, ["ledger_counter", "ledger_tags"]);
    assert!(!partial.is_applied() && !partial.is_empty());
    store.migrate().await.unwrap();
    assert!(store.schema_status().await.unwrap().is_applied(), "migrate repairs it");
    // The default schema: the connection's database, migrated or not.
    let options = pupsourcing_core::ConnectOptions::new().max_connections(1);
    let url = common::url_for(&database);
    let config = StoreConfig::default().events_table("ledger").unwrap();
    let here = MySqlEventStore::connect_with(&url, config, options).await.unwrap();
    let status = here.schema_status().await.unwrap();
    assert_eq!(status.location, database);
    assert!(status.is_applied(), "{status:?}");
    let elsewhere = StoreConfig::default().schema(&common::unique_database()).unwrap();
    let other = MySqlEventStore::connect_with(&common::url(), elsewhere, options).await.unwrap();
    assert!(other.schema_status().await.unwrap().is_empty());
    for s in [&store, &here, &other] {
        s.close().await;
    }
}

/// A server that does not answer fails `connect` at once, saying where (no server needed).
#[tokio::test]
async fn an_unreachable_server_is_named() {
    let started = std::time::Instant::now();
    let url = "mysql://root@127.0.0.1:1/test";
    let err = MySqlEventStore::connect(url, StoreConfig::default()).await.unwrap_err();
    assert!(matches!(err, pupsourcing_core::Error::Database(_)), "{err:?}");
    assert!(err.to_string().contains("cannot connect to MySQL at 127.0.0.1:1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// The store's sessions run in strict mode at READ COMMITTED.
#[tokio::test]
async fn sessions_are_strict_and_read_committed() {
    let Some(store) = common::fresh_store().await else { return };
    let (mode, level): (String, String) =
        sqlx::query_as("SELECT @@sql_mode, CAST(@@tx_isolation AS CHAR)")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(mode.contains("STRICT_ALL_TABLES"), "{mode}");
    assert_eq!(level, "READ-COMMITTED");
}

/// An append in a caller's transaction holds the counter until the transaction ends: a later
/// append waits for it (and gets the next positions), as ARCHITECTURE.md says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_appending_transaction_holds_later_appends() {
    let Some(store) = common::fresh_store().await else { return };
    let mut tx = store.begin().await.unwrap();
    let first = store
        .append_in(
            &mut tx,
            &pupsourcing_testkit::new_stream(),
            ExpectedVersion::Any,
            &[pupsourcing_testkit::event("A")],
        )
        .await
        .unwrap();
    let later = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(
                    &pupsourcing_testkit::new_stream(),
                    ExpectedVersion::Any,
                    &[pupsourcing_testkit::event("B")],
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!later.is_finished(), "the later append waits for the counter");
    assert_eq!(store.head().await.unwrap(), 0, "nothing is visible yet");
    store.commit(tx).await.unwrap();
    let later = later.await.unwrap().unwrap();
    assert_eq!(later.positions, vec![first.positions[0] + 1]);
    assert_eq!(store.head().await.unwrap(), 2);
}

/// The last position there is, `i64::MAX`, is handed out and read back; the next append is
/// refused with a typed error and writes nothing.
#[tokio::test]
async fn the_last_position_is_usable_and_then_refused() {
    let Some(store) = common::fresh_store().await else { return };
    let database = store.config().schema.as_str().to_string();
    let set = format!("UPDATE `{database}`.`events_counter` SET last_position = {}", i64::MAX - 2);
    sqlx::raw_sql(sqlx::AssertSqlSafe(set)).execute(store.pool()).await.unwrap();
    let two = [NewEvent::new("Last", vec![]), NewEvent::new("Last", vec![])];
    let written = store.append_if(&two, None).await.unwrap();
    assert_eq!(written.positions, vec![i64::MAX - 1, i64::MAX]);
    let refused = store.append_if(&[NewEvent::new("Beyond", vec![])], None).await;
    assert!(
        matches!(refused, Err(pupsourcing_core::Error::Validation(_))),
        "an append past the last position: {refused:?}"
    );
    let read = store.read_all(i64::MAX - 1, 10).await.unwrap();
    assert_eq!(read.iter().map(|e| e.position).collect::<Vec<_>>(), vec![i64::MAX - 1, i64::MAX]);
}

/// A large batch (300 events of every column's awkward values, sent as hex literals): every
/// column reads back exactly as written, positions are contiguous, a replay returns the
/// original positions, and a stored event id anywhere in the batch (near its end, its middle,
/// its start, or every event after the first 256) is a partial duplicate that writes nothing,
/// also when the events before it were inserted by this very append.
#[tokio::test]
async fn large_batches_round_trip_and_detect_duplicates() {
    use chrono::TimeZone;
    let Some(store) = common::fresh_store().await else { return };
    let batch = |tag: &str| -> Vec<NewEvent> {
        (0..300u32)
            .map(|i| {
                let mut payload = vec![0u8, b'\'', b'\\', 0xff, 0xfe, b'"'];
                payload.extend_from_slice(&i.to_be_bytes());
                let at = chrono::Utc.timestamp_micros(1_000_000 + i64::from(i)).unwrap();
                let mut event = NewEvent::new(format!("T\u{e1}{i}'"), payload)
                    .with_event_version(i as i32 + 2)
                    .with_tags([tag.to_string(), format!("n:{}", i % 3)])
                    .with_created_at(at);
                if i % 2 == 0 {
                    event = event
                        .with_bounded_context("ctx \u{1f600}")
                        .with_metadata(serde_json::json!({ "i": i, "s": "'\\" }))
                        .with_trace_id(uuid::Uuid::now_v7())
                        .with_correlation_id(uuid::Uuid::now_v7())
                        .with_causation_id(uuid::Uuid::now_v7());
                }
                event
            })
            .collect()
    };
    let stream = pupsourcing_testkit::new_stream();
    store.append(&stream, ExpectedVersion::Any, &batch("warm")[..5]).await.unwrap();
    let events = batch("big");
    let written = store.append(&stream, ExpectedVersion::Exact(5), &events).await.unwrap();
    assert_eq!(written.versions, (6..=305).collect::<Vec<_>>());
    let first = written.positions[0];
    assert_eq!(written.positions, (first..first + 300).collect::<Vec<_>>());
    let read = store.read_stream(&stream, pupsourcing_core::VersionRange::all()).await.unwrap();
    assert_eq!(read.len(), 305);
    for ((recorded, event), position) in read[5..].iter().zip(&events).zip(&written.positions) {
        assert_eq!(recorded.position, *position);
        assert_eq!(recorded.event_id, event.event_id);
        assert_eq!(recorded.event_type, event.event_type);
        assert_eq!(recorded.event_version, event.event_version);
        assert_eq!(recorded.bounded_context, event.bounded_context);
        assert_eq!(recorded.tags, event.tags);
        assert_eq!(recorded.payload, event.payload);
        assert_eq!(recorded.metadata, event.metadata);
        assert_eq!(recorded.trace_id, event.trace_id);
        assert_eq!(recorded.correlation_id, event.correlation_id);
        assert_eq!(recorded.causation_id, event.causation_id);
        assert_eq!(recorded.created_at, event.created_at);
        let (in_stream, version) = recorded.stream.clone().unwrap();
        assert_eq!((in_stream, version), (stream.clone(), recorded.position - first + 6));
    }
    // The tag index rows of both parts, at their events' positions.
    let by_tag = Query::from_items([QueryItem::tags(["big", "n:1"])]);
    let tagged = store.read(&by_tag, ReadOptions::new()).await.unwrap();
    let expected: Vec<i64> = written.positions.iter().copied().skip(1).step_by(3).collect();
    assert_eq!(tagged.events.iter().map(|e| e.position).collect::<Vec<_>>(), expected);
    let replay = store.append(&stream, ExpectedVersion::Exact(5), &events).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.positions, written.positions);

    // One stored id near the end, in the middle, at the start; and every event after the
    // first 256 stored (the 256 before them inserted by this append, in its transaction:
    // still no replay).
    let head = store.head().await.unwrap();
    for (case, stored) in [(0, vec![295]), (1, vec![270]), (2, vec![0]), (3, (256..300).collect())]
    {
        let stream = pupsourcing_testkit::new_stream();
        let events = batch(&format!("case{case}"));
        let before: Vec<NewEvent> = stored.iter().map(|&i| events[i].clone()).collect();
        let other = pupsourcing_testkit::new_stream();
        store.append(&other, ExpectedVersion::Any, &before).await.unwrap();
        let head = store.head().await.unwrap();
        match store.append(&stream, ExpectedVersion::Any, &events).await {
            Err(pupsourcing_core::Error::PartialDuplicate { stored: n, total: 300, first: id }) => {
                assert_eq!(n, stored.len(), "case {case}");
                assert_eq!(id, events[stored[0]].event_id, "case {case}");
            }
            other => panic!("case {case}: expected a partial duplicate, got {other:?}"),
        }
        assert_eq!(store.head().await.unwrap(), head, "case {case}: nothing written");
        assert_eq!(store.stream_version(&stream).await.unwrap(), 0, "case {case}");
    }
    assert!(store.head().await.unwrap() > head);
}

/// Large batches (32 to 121 events) from racing writers, lone and grouped, while a reader tails
/// the log: the reader sees every event exactly once, in position order, none skipped by a
/// commit below its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_batches_never_open_gaps() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(store) = common::fresh_store().await else { return };
    let writing = Arc::new(AtomicBool::new(true));
    let reader = pupsourcing_testkit::spawn_tail(store.clone(), writing.clone(), 500);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let writers: Vec<_> = (0..6u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = pupsourcing_testkit::new_stream();
                let mut written = Vec::new();
                let mut n = 0u64;
                while std::time::Instant::now() < deadline {
                    n += 1;
                    let size = 32 + ((n * 37 + w * 11) % 90) as usize;
                    let batch: Vec<_> = (0..size)
                        .map(|_| pupsourcing_testkit::event("Big").with_tags(["t"]))
                        .collect();
                    store.append(&stream, ExpectedVersion::Any, &batch).await.unwrap();
                    written.extend(batch.iter().map(|e| e.event_id));
                }
                written
            })
        })
        .collect();
    let mut written = std::collections::HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    writing.store(false, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "positions strictly increase");
    let ids: std::collections::HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    let missed = written.difference(&ids).count();
    assert_eq!(missed, 0, "the reader skipped {missed} of {} events", written.len());
    assert_eq!(ids.len(), written.len());
}
