//! The pipelined write path of MySQL / MariaDB (`append/write.rs`): several statements per
//! round trip, the server stopping at the first that fails. What a failure in the middle of a
//! round trip leaves behind (the answer, the transaction, the connection), the positions taken
//! with `LAST_INSERT_ID()`, cancellation, caller transactions, and what reads back.

mod common;

use pupsourcing_core::dcb::DcbStore;
use pupsourcing_core::{Error, EventStore, ExpectedVersion, NewEvent};
use pupsourcing_mysql::{MySqlEventStore, sqlx};
use pupsourcing_testkit::{event, new_stream};

/// Runs `sql` (`{db}` is the store's database) on the store's pool.
async fn exec(store: &MySqlEventStore, sql: &str) {
    let sql = sql.replace("{db}", &format!("`{}`", store.config().schema.as_str()));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
}

/// A single number from `sql` (`{db}` as in [`exec`]).
async fn number(store: &MySqlEventStore, sql: &str) -> i64 {
    let sql = sql.replace("{db}", &format!("`{}`", store.config().schema.as_str()));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap()
}

/// A failure of the tag index insert, after the events insert of the same round trip went
/// through, is no replay: the batch's ids are found, but only in the append's own transaction,
/// which is then rolled back. The append must fail and leave nothing, not answer "replayed"
/// with positions that do not exist. (A tag row squatting on the next position stands for
/// any fault of that statement.)
#[tokio::test]
async fn a_failed_tag_insert_is_not_taken_for_a_replay() {
    let Some(store) = common::fresh_store().await else { return };
    exec(&store, "INSERT INTO {db}.events_tags VALUES (X'74', 1, X'45'), (X'74', 2, X'45')").await;
    let tagged = || NewEvent::new("E", b"{}".to_vec()).with_tags(["t"]);

    let own = store.append_if(&[tagged()], None).await;
    assert!(matches!(own, Err(Error::Database(_))), "own transaction: {own:?}");
    let stream = store.append(&new_stream(), ExpectedVersion::Any, &[tagged()]).await;
    assert!(matches!(stream, Err(Error::Database(_))), "stream: {stream:?}");

    let mut tx = store.begin().await.unwrap();
    let before = store.append_if_in(&mut tx, &[event("Before")], None).await.unwrap();
    let inside = store.append_if_in(&mut tx, &[tagged()], None).await;
    assert!(matches!(inside, Err(Error::Database(_))), "caller transaction: {inside:?}");
    store.commit(tx).await.unwrap();

    assert_eq!(store.head().await.unwrap(), before.positions[0]);
    let read = store.read_all(1, 10).await.unwrap();
    assert_eq!(read.len(), 1, "only the event before the failure: {read:?}");
    assert_eq!(read[0].event_type, "Before");
}

/// The server's `max_allowed_packet`, in bytes.
async fn max_packet(store: &MySqlEventStore) -> usize {
    let max: u64 =
        sqlx::query_scalar("SELECT @@max_allowed_packet").fetch_one(store.pool()).await.unwrap();
    usize::try_from(max).unwrap()
}

/// A batch written in two round trips (two chunks) whose second chunk holds an id stored
/// before: the first chunk's events are in the append's transaction by then, but they were
/// not stored before the append. So it is a partial duplicate, not a replay, and nothing is
/// written; on every path (own transaction, stream, caller's transaction).
#[tokio::test]
async fn a_duplicate_in_a_later_chunk_is_a_partial_duplicate() {
    let Some(store) = common::fresh_store().await else { return };
    // Hex doubles the bytes: a fifth of a packet each, two events per round trip.
    let size = max_packet(&store).await / 5;
    let batch: Vec<_> = (0..3u8).map(|i| NewEvent::new("Big", vec![i; size])).collect();
    let stored = store.append_if(&batch[2..], None).await.unwrap();
    assert_eq!(stored.positions, [1]);

    let check =
        |result: pupsourcing_core::Result<pupsourcing_core::AppendResult>, path: &str| match result
        {
            Err(Error::PartialDuplicate { stored: 1, total: 3, first }) => {
                assert_eq!(first, batch[2].event_id, "{path}");
            }
            other => panic!("{path}: a partial duplicate, not {other:?}"),
        };
    check(store.append_if(&batch, None).await, "own transaction");
    check(store.append(&new_stream(), ExpectedVersion::Any, &batch).await, "stream");
    let mut tx = store.begin().await.unwrap();
    check(store.append_if_in(&mut tx, &batch, None).await, "caller transaction");
    store.commit(tx).await.unwrap();
    assert_eq!(store.head().await.unwrap(), 1, "nothing more was written");
}

/// A store whose pool has one connection, so that every call after a failure runs on the
/// connection the failure left behind.
async fn one_connection_store() -> Option<MySqlEventStore> {
    use pupsourcing_core::{ConnectOptions, StoreConfig};
    let config = StoreConfig::default().schema(&common::unique_database()).unwrap();
    let options = ConnectOptions::new().max_connections(1);
    let store = MySqlEventStore::connect_with(&common::url(), config, options).await.ok()?;
    store.migrate().await.unwrap();
    Some(store)
}

/// Whether another session can lock, within InnoDB's shortest lock wait (one second), every
/// row appends lock: the counter, the head rows, the boundary lock rows. Only when the store
/// is quiet: nothing of its own may hold them then.
async fn nothing_locked(store: &MySqlEventStore) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut other = sqlx::MySqlConnection::connect(&common::url()).await?;
    let db = store.config().schema.as_str();
    let lock = format!(
        "SET SESSION innodb_lock_wait_timeout = 1; SET SESSION TRANSACTION ISOLATION LEVEL \
         READ COMMITTED; START TRANSACTION; \
         SELECT COUNT(*) FROM `{db}`.events_counter FOR UPDATE; \
         SELECT COUNT(*) FROM `{db}`.aggregate_heads FOR UPDATE; \
         SELECT COUNT(*) FROM `{db}`.events_locks FOR UPDATE; ROLLBACK"
    );
    let taken = sqlx::raw_sql(sqlx::AssertSqlSafe(lock)).execute(&mut other).await;
    let _ = other.close().await;
    taken.map(drop)
}

/// [`nothing_locked`], tried a few times: a dropped append's connection is closed in the
/// background, and its group may still be writing; a lock left behind stays held for good.
async fn soon_nothing_locked(store: &MySqlEventStore) -> Result<(), sqlx::Error> {
    let mut result = nothing_locked(store).await;
    for _ in 0..4 {
        if result.is_ok() {
            break;
        }
        result = nothing_locked(store).await;
    }
    result
}

/// The pool's (one) connection is in no transaction and nothing holds a lock.
async fn assert_idle(store: &MySqlEventStore, after: &str) {
    let open: i64 = number(
        store,
        "SELECT COUNT(*) FROM information_schema.innodb_trx \
         WHERE trx_mysql_thread_id = CONNECTION_ID()",
    )
    .await;
    assert_eq!(open, 0, "after {after}: the pooled connection is in a transaction");
    let free = nothing_locked(store).await;
    assert!(free.is_ok(), "after {after}: a lock is still held: {free:?}");
}

/// Every kind of failure in the middle of the write's round trip (a replay and a partial
/// duplicate failing the events insert, an expected version failing before the write, the
/// counter out of range), each followed by calls on the same pooled connection: the
/// connection is clean (no unread results, no open transaction, no lock held), the answers
/// are right and nothing of the failed appends is written.
#[tokio::test]
async fn failures_mid_round_trip_leave_the_connection_clean() {
    let Some(store) = one_connection_store().await else { return };
    let stream = new_stream();
    let (e1, e2, e3) = (event("A"), event("B"), event("C"));
    let first =
        store.append(&stream, ExpectedVersion::NoStream, &[e1.clone(), e2.clone()]).await.unwrap();
    assert_eq!(
        (first.positions.as_slice(), first.versions.as_slice()),
        ([1, 2].as_slice(), [1, 2].as_slice())
    );

    // ExpectedVersion::Any passes the check: the events insert itself fails, after the head
    // bump and the counter statement of the same round trip.
    let replay = store.append(&stream, ExpectedVersion::Any, &[e1.clone(), e2.clone()]).await;
    let replay = replay.unwrap();
    assert!(replay.replayed);
    assert_eq!((replay.positions, replay.versions), (vec![1, 2], vec![1, 2]));
    assert_idle(&store, "a replay").await;

    let partial = store.append(&stream, ExpectedVersion::Any, &[e3.clone(), e2.clone()]).await;
    assert!(
        matches!(partial, Err(Error::PartialDuplicate { stored: 1, total: 2, .. })),
        "{partial:?}"
    );
    assert_idle(&store, "a partial duplicate").await;

    let dcb = store.append_if(std::slice::from_ref(&e2), None).await.unwrap();
    assert!(dcb.replayed);
    assert_eq!((dcb.positions, dcb.versions), (vec![2], vec![]));
    assert_idle(&store, "a DCB replay").await;

    let conflict =
        store.append(&stream, ExpectedVersion::Exact(1), std::slice::from_ref(&e3)).await;
    assert!(matches!(conflict, Err(Error::Concurrency { actual: 2, .. })), "{conflict:?}");
    assert_idle(&store, "a conflict").await;

    assert_eq!(store.head().await.unwrap(), 2);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 2);
    let next =
        store.append(&stream, ExpectedVersion::Exact(2), std::slice::from_ref(&e3)).await.unwrap();
    assert_eq!((next.positions, next.versions), (vec![3], vec![3]));

    // The counter at the largest BIGINT: its statement fails, after the head's.
    exec(&store, &format!("UPDATE {{db}}.events_counter SET last_position = {}", i64::MAX)).await;
    let beyond = store.append(&stream, ExpectedVersion::Exact(3), &[event("D")]).await;
    assert!(matches!(beyond, Err(Error::Validation(_))), "{beyond:?}");
    assert_idle(&store, "the counter out of range").await;
    assert_eq!(store.stream_version(&stream).await.unwrap(), 3, "the head bump was undone");
    exec(&store, "UPDATE {db}.events_counter SET last_position = 3").await;

    let read = store.read_all(1, 10).await.unwrap();
    let ids: Vec<_> = read.iter().map(|e| (e.position, e.event_id)).collect();
    assert_eq!(ids, [(1, e1.event_id), (2, e2.event_id), (3, e3.event_id)]);
}

/// The same failures inside a caller's transaction: each is undone to its savepoint, the
/// appends before and after it in the transaction stand, and a rollback leaves nothing.
#[tokio::test]
async fn failures_in_a_caller_transaction_undo_only_the_failed_append() {
    let Some(store) = common::fresh_store().await else { return };
    let (stored, fresh) = (event("Stored"), event("Fresh"));
    store.append_if(std::slice::from_ref(&stored), None).await.unwrap();
    let stream = new_stream();

    let mut tx = store.begin().await.unwrap();
    let a = store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await;
    assert_eq!(a.unwrap().positions, [2]);
    let partial = store
        .append_in(&mut tx, &stream, ExpectedVersion::Any, &[fresh.clone(), stored.clone()])
        .await;
    assert!(matches!(partial, Err(Error::PartialDuplicate { .. })), "{partial:?}");
    let replay = store.append_if_in(&mut tx, std::slice::from_ref(&stored), None).await.unwrap();
    assert_eq!((replay.replayed, replay.positions), (true, vec![1]));
    let b = store.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &[event("B")]).await;
    let b = b.unwrap();
    assert_eq!((b.positions, b.versions), (vec![3], vec![2]));
    let c = store.append_if_in(&mut tx, std::slice::from_ref(&fresh), None).await.unwrap();
    assert_eq!(c.positions, [4]);
    store.rollback(tx).await.unwrap();
    assert_eq!(store.head().await.unwrap(), 1, "rolled back: nothing");
    assert_eq!(store.stream_version(&stream).await.unwrap(), 0);

    let mut tx = store.begin().await.unwrap();
    let a = store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("A")]).await;
    let a = a.unwrap();
    let bc = [event("B"), event("C")];
    let b = store.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &bc).await.unwrap();
    let d = store.append_if_in(&mut tx, std::slice::from_ref(&fresh), None).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!((a.positions, b.positions, d.positions), (vec![2], vec![3, 4], vec![5]));
    assert_eq!(b.versions, [2, 3]);
    let read = store.read_stream(&stream, pupsourcing_core::VersionRange::all()).await.unwrap();
    let got: Vec<_> = read.iter().map(|e| (e.position, e.aggregate_version())).collect();
    assert_eq!(got, [(2, Some(1)), (3, Some(2)), (4, Some(3))]);
    assert_eq!(store.read_all(5, 1).await.unwrap()[0].event_id, fresh.event_id);
}

/// The positions recorded with each command (`<commands>.positions`), in command order.
async fn recorded_positions(store: &MySqlEventStore) -> Vec<Vec<i64>> {
    let sql = format!(
        "SELECT positions FROM `{}`.commands ORDER BY command_id",
        store.config().schema.as_str()
    );
    let rows: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(store.pool()).await.unwrap();
    rows.iter().map(|r| serde_json::from_str(r).unwrap()).collect()
}

fn command(name: &str) -> pupsourcing_core::dcb::CommandRecord {
    pupsourcing_core::dcb::CommandRecord {
        command_type: name.to_string(),
        data: serde_json::json!({ "n": name }),
        metadata: None,
        positions: Vec::new(),
    }
}

/// `LAST_INSERT_ID()` is per connection and moved by every insert into a table with
/// AUTO_INCREMENT, as the commands table is. Command records next to appends (the executor's
/// `append_if_and_record`, and records and appends interleaved in a caller's transaction)
/// never shift the positions: those returned, those recorded and those stored are the same.
#[tokio::test]
async fn command_records_do_not_shift_positions() {
    let Some(store) = one_connection_store().await else { return };
    // Command ids well away from the positions, so a mix-up cannot pass unnoticed.
    exec(&store, "ALTER TABLE {db}.commands AUTO_INCREMENT = 1000").await;
    let mut expected: Vec<(i64, uuid::Uuid)> = Vec::new();
    let mut remember = |events: &[NewEvent], positions: &[i64]| {
        assert_eq!(events.len(), positions.len());
        expected.extend(positions.iter().copied().zip(events.iter().map(|e| e.event_id)));
    };

    let batch = [event("A"), event("B")];
    let a = store.append_if_and_record(&batch, None, &command("first")).await.unwrap();
    assert_eq!(a.positions, [1, 2]);
    remember(&batch, &a.positions);
    // A replay records nothing.
    let again = store.append_if_and_record(&batch, None, &command("again")).await.unwrap();
    assert!(again.replayed);

    let mut tx = store.begin().await.unwrap();
    store.record_command_in(&mut tx, &command("in-1")).await.unwrap();
    let one = [event("C")];
    let c = store.append_if_in(&mut tx, &one, None).await.unwrap();
    remember(&one, &c.positions);
    store.record_command_in(&mut tx, &command("in-2")).await.unwrap();
    let stream = new_stream();
    let three = [event("D"), event("E"), event("F")];
    let d = store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &three).await.unwrap();
    remember(&three, &d.positions);
    store.record_command_in(&mut tx, &command("in-3")).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!((c.positions, d.positions), (vec![3], vec![4, 5, 6]));

    let last = [event("G")];
    let g = store.append_if_and_record(&last, None, &command("last")).await.unwrap();
    remember(&last, &g.positions);
    assert_eq!(recorded_positions(&store).await, [vec![1, 2], vec![], vec![], vec![], vec![7]]);
    let read: Vec<_> =
        store.read_all(1, 100).await.unwrap().iter().map(|e| (e.position, e.event_id)).collect();
    assert_eq!(read, expected);
}

/// Concurrent command executions (each recording its command with its events) and plain
/// appends: every record names exactly the positions where its events are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_name_their_own_positions() {
    let Some(store) = common::fresh_store().await else { return };
    exec(&store, "ALTER TABLE {db}.commands AUTO_INCREMENT = 1000").await;
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..15 {
                    let batch: Vec<_> = (0..1 + i % 3).map(|_| event("Cmd")).collect();
                    if t % 2 == 0 {
                        store.append_if(&batch, None).await.unwrap();
                        continue;
                    }
                    let ids: Vec<String> = batch.iter().map(|e| e.event_id.to_string()).collect();
                    let record = pupsourcing_core::dcb::CommandRecord {
                        data: serde_json::json!(ids),
                        ..command("cmd")
                    };
                    let r = store.append_if_and_record(&batch, None, &record).await.unwrap();
                    written.push((r.positions, batch.iter().map(|e| e.event_id).collect()));
                }
                written
            })
        })
        .collect();
    let mut returned: Vec<(Vec<i64>, Vec<uuid::Uuid>)> = Vec::new();
    for task in tasks {
        returned.extend(task.await.unwrap());
    }
    let all = store.read_all(1, 1000).await.unwrap();
    let at: std::collections::HashMap<i64, uuid::Uuid> =
        all.iter().map(|e| (e.position, e.event_id)).collect();
    for (positions, ids) in &returned {
        let stored: Vec<_> = positions.iter().map(|p| at[p]).collect();
        assert_eq!(&stored, ids, "returned positions {positions:?}");
    }
    let mut recorded = recorded_positions(&store).await;
    let mut expected: Vec<Vec<i64>> = returned.into_iter().map(|(p, _)| p).collect();
    recorded.sort();
    expected.sort();
    assert_eq!(recorded, expected);
}

/// An append cut short by its time limit (waiting for a stream held by a caller's
/// transaction) fails with `Error::Timeout` and writes nothing, and its connection does not go
/// back to the pool inside its transaction: the next appends run at once and take the next
/// positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_append_writes_nothing_and_leaks_no_transaction() {
    use std::time::{Duration, Instant};
    let config = pupsourcing_core::StoreConfig::default()
        .append_timeout(Duration::from_millis(300))
        .schema(&common::unique_database())
        .unwrap();
    let options = pupsourcing_core::ConnectOptions::new().max_connections(2);
    let Ok(store) = MySqlEventStore::connect_with(&common::url(), config, options).await else {
        return;
    };
    store.migrate().await.unwrap();
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();

    for round in 0..3 {
        let mut tx = store.begin().await.unwrap();
        let held = [event("Held")];
        store.append_in(&mut tx, &stream, ExpectedVersion::Any, &held).await.unwrap();
        let late = event("Late");
        let timed_out =
            store.append(&stream, ExpectedVersion::Any, std::slice::from_ref(&late)).await;
        assert!(matches!(timed_out, Err(Error::Timeout)), "round {round}: {timed_out:?}");
        store.rollback(tx).await.unwrap();
        let free = soon_nothing_locked(&store).await;
        assert!(free.is_ok(), "round {round}: the timed-out append holds a lock: {free:?}");
        let started = Instant::now();
        let next = store.append_if(&[event("Next")], None).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(250), "round {round}: waited");
        assert_eq!(next.positions, [2 + round]);
        let late_stored = store.read_all(1, 100).await.unwrap();
        assert!(late_stored.iter().all(|e| e.event_id != late.event_id), "round {round}");
    }
    assert_eq!(store.stream_version(&stream).await.unwrap(), 1);
}

/// Appends whose futures are dropped at random moments, the write's round trip (with the
/// COMMIT) maybe in flight: each batch is then stored whole or not at all, the positions stay
/// one gap-free run, and no connection is left holding a lock (the appends after them run).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_appends_are_whole_or_absent() {
    use std::time::Duration;
    let Some(store) = common::fresh_store().await else { return };
    let mut batches: Vec<Vec<uuid::Uuid>> = Vec::new();
    for round in 0..40u64 {
        let stream = new_stream();
        let batch: Vec<_> =
            (0..4).map(|i| NewEvent::new("Chunky", vec![i; 256 * 1024]).with_tags(["c"])).collect();
        batches.push(batch.iter().map(|e| e.event_id).collect());
        let append = {
            let store = store.clone();
            tokio::spawn(async move {
                store.append(&stream, ExpectedVersion::NoStream, &batch).await.map(drop)
            })
        };
        tokio::time::sleep(Duration::from_micros(round * 500)).await;
        append.abort();
        let _ = append.await;
        let free = soon_nothing_locked(&store).await;
        assert!(free.is_ok(), "round {round}: a dropped append holds a lock: {free:?}");
    }
    let last = [event("After")];
    let after = tokio::time::timeout(Duration::from_secs(10), store.append_if(&last, None));
    let after = after.await.expect("a lock left behind would hold this append").unwrap();
    let read = store.read_all(1, 1000).await.unwrap();
    let positions: Vec<i64> = read.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=after.positions[0]).collect::<Vec<_>>(), "gap-free");
    let stored: std::collections::HashSet<_> = read.iter().map(|e| e.event_id).collect();
    let mut whole = 0;
    for batch in &batches {
        let present = batch.iter().filter(|id| stored.contains(id)).count();
        assert!(present == 0 || present == batch.len(), "a batch stored in part: {present}");
        whole += usize::from(present > 0);
    }
    eprintln!("dropped appends: {whole} of {} stored", batches.len());
}

/// Events at the packet's edge (hex doubles the payload): a 12 MB event on a 16 MB packet is
/// refused up front with a typed error, writing nothing; the largest event the store accepts
/// (found by bisection) is taken by the server and reads back byte for byte, on the DCB path
/// and in a stream; one byte more is refused.
#[tokio::test]
async fn the_largest_accepted_event_is_written_whole() {
    use pupsourcing_core::ValidationError;
    let Some(store) = common::fresh_store().await else { return };
    let max = max_packet(&store).await;
    let too_long = |r: &pupsourcing_core::Result<pupsourcing_core::AppendResult>| {
        matches!(r, Err(Error::Validation(ValidationError::TooLong { .. })))
    };
    let big = NewEvent::new("Big", vec![0xAB; max * 3 / 4]);
    assert!(too_long(&store.append_if(&[big], None).await));
    assert_eq!(store.head().await.unwrap(), 0);

    for stream in [None, Some(new_stream())] {
        let append = |size: usize| {
            let (store, stream) = (store.clone(), stream.clone());
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            // One partition key for all: the partition hash is sent as a decimal literal, and
            // hashed from each event's random id its digits (1 to 10) would move the edge.
            let event = NewEvent::new("Edge", bytes).with_tags(["edge"]).with_partition_key("edge");
            async move {
                let result = match &stream {
                    Some(s) => {
                        store.append(s, ExpectedVersion::Any, std::slice::from_ref(&event)).await
                    }
                    None => store.append_if(std::slice::from_ref(&event), None).await,
                };
                (result, event)
            }
        };
        // Accepted at `low`, refused at `high`: the store keeps 64 KiB of a packet for the
        // statements' own text, and an event's other columns take less than 8 KiB here.
        let (mut low, mut high) = (max / 2 - 40 * 1024, max / 2 - 32 * 1024);
        let mut largest = None;
        while high - low > 1 {
            let mid = (low + high) / 2;
            let (result, event) = append(mid).await;
            if too_long(&result) {
                high = mid;
            } else {
                let position = result.unwrap().positions[0];
                (low, largest) = (mid, Some((position, event)));
            }
        }
        let (position, event) = largest.expect("some size was accepted");
        let read = store.read_all(position, 1).await.unwrap();
        assert_eq!(read[0].event_id, event.event_id);
        assert!(read[0].payload == event.payload, "the payload of {low} bytes reads back whole");
        assert!(too_long(&append(low + 1).await.0), "{stream:?}: {} bytes", low + 1);
    }
}

/// A store migrated by the code before the pipelined write (its schema, with the write
/// procedure, and events written by that procedure): `migrate` runs again over it, its status
/// is complete, and appends continue its streams and its positions.
#[tokio::test]
async fn a_store_with_the_old_write_procedure_keeps_working() {
    use pupsourcing_core::{StoreConfig, VersionRange};
    const OLD: &str = include_str!("fixtures/schema_before_pipeline.sql");
    let config = StoreConfig::default().schema(&common::unique_database()).unwrap();
    let Some(store) = common::connect(config).await else { return };
    let db = format!("`{}`", store.config().schema.as_str());
    let mut old = format!("CREATE DATABASE {db};\n") + OLD;
    for table in [
        "events_write_rows",
        "events_counter",
        "events_tags",
        "events_locks",
        "events",
        "aggregate_heads",
        "commands",
        "checkpoints",
        "dead_letters",
        "workers",
        "shards",
        "recreate_lock",
    ] {
        old = old.replace(&format!("{{{table}}}"), &format!("{db}.`{table}`"));
    }
    old = old.replace("{now}", "0");
    sqlx::raw_sql(sqlx::AssertSqlSafe(old)).execute(store.pool()).await.unwrap();
    // One event of a stream, written as the old append did: the procedure, then the head.
    let stream = new_stream();
    let id = uuid::Uuid::new_v4();
    let batch = serde_json::json!([{
        "id": id.simple().to_string(), "st": stream.aggregate_type,
        "sid": stream.aggregate_id.simple().to_string(), "sv": "1", "t": "Old", "v": 1,
        "tj": "[\"old\"]", "tags": ["old"], "p": "AAEC", "at": "0", "h": 7,
    }]);
    let mut tx = store.pool().begin().await.unwrap();
    let call = format!("CALL {db}.events_write_rows(?, 1)");
    let call = sqlx::query(sqlx::AssertSqlSafe(call)).bind(batch.to_string());
    call.execute(&mut *tx).await.unwrap();
    let head = format!("INSERT INTO {db}.aggregate_heads VALUES (?, ?, 1, 0)");
    let head = sqlx::query(sqlx::AssertSqlSafe(head))
        .bind(stream.aggregate_type.as_str())
        .bind(stream.aggregate_id.as_bytes().as_slice());
    head.execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    store.migrate().await.unwrap();
    let status = store.schema_status().await.unwrap();
    assert!(status.tables.iter().all(|t| t.present), "{status:?}");
    let next = store.append(&stream, ExpectedVersion::Exact(1), &[event("New")]).await.unwrap();
    assert_eq!((next.positions, next.versions), (vec![2], vec![2]));
    let dcb = store.append_if(&[event("Dcb")], None).await.unwrap();
    assert_eq!(dcb.positions, [3]);
    let read = store.read_stream(&stream, VersionRange::all()).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!((read[0].event_id, read[0].payload.as_slice()), (id, [0u8, 1, 2].as_slice()));
    assert_eq!(read[0].tags, ["old"]);
}
