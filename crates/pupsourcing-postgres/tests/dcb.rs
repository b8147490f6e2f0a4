//! The DCB conformance suite on a real PostgreSQL server, each test in a schema of its own.

mod common;

pupsourcing_testkit::dcb_conformance!(common::fresh_store);

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions, ReadResult};
use pupsourcing_core::{EventStore, NewEvent, Position};
use pupsourcing_postgres::PgEventStore;

fn tagged(tag: &str) -> NewEvent {
    NewEvent::new("Tick", b"{}".to_vec()).with_tags([tag])
}

/// Read-your-writes: a client's read of its own boundary sees its committed append while an
/// unrelated writer is still in flight below it, and decides on it without a false conflict.
/// A writer that could add a matching event still holds the read back, and so does the head of
/// the whole log.
#[tokio::test]
async fn a_query_head_waits_only_for_writers_of_matching_events() {
    let Some(store) = common::fresh_store().await else { return };
    let mine = Query::from_items([QueryItem::tags(["mine:1"])]);

    let mut unrelated = store.begin().await.unwrap();
    store.append_if_in(&mut unrelated, &[tagged("other:1")], None).await.unwrap();
    let appended = store.append_if(&[tagged("mine:1")], None).await.unwrap();
    let position = appended.positions[0];

    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.len(), 1, "the client's own append is read");
    assert!(read.head >= position);
    let next = AppendCondition::none_after(mine.clone(), read.head);
    store.append_if(&[tagged("mine:1")], Some(&next)).await.expect("no false conflict");
    assert!(store.head().await.unwrap() < position, "the log's head still waits");

    // A writer of a matching event holds the query's head back until it ends.
    let mut related = store.begin().await.unwrap();
    store.append_if_in(&mut related, &[tagged("mine:1")], None).await.unwrap();
    let held = store.read(&mine, ReadOptions::new()).await.unwrap();
    let stale = AppendCondition::none_after(mine.clone(), held.head);
    store.commit(related).await.unwrap();
    let after = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!(after.events.len(), 3);
    assert!(held.head < after.events[2].position, "the head waited for the related writer");
    let refused = store.append_if(&[tagged("mine:1")], Some(&stale)).await;
    assert!(matches!(refused, Err(pupsourcing_core::Error::ConditionFailed { .. })));
    store.commit(unrelated).await.unwrap();
    assert_eq!(store.read(&Query::all(), ReadOptions::new()).await.unwrap().events.len(), 4);
}

/// A read that finds nothing above the store's cached log head is answered below it, in one
/// statement (its head is the cached one, not the query's newer head); a read that finds an
/// event above it pays for the query's head, which a matching writer in flight holds back. A
/// read answering with a head above that writer's event (say the last event it found) would
/// let the stale condition below pass.
#[tokio::test]
async fn reads_below_the_cached_head_never_pass_a_matching_writer_in_flight() {
    let Some(store) = common::fresh_store().await else { return };
    let mine = Query::from_items([QueryItem::tags(["mine:2"])]);
    let first = store.append_if(&[tagged("mine:2")], None).await.unwrap().positions[0];
    let known = store.head().await.unwrap();
    assert_eq!(known, first);

    // An unrelated writer in flight: a fresh boundary's query head would pass it, the cached
    // head does not, and the read of the fresh boundary is answered below the cached head.
    let mut unrelated = store.begin().await.unwrap();
    store.append_if_in(&mut unrelated, &[tagged("other:2")], None).await.unwrap();
    let fresh = Query::from_items([QueryItem::tags(["fresh:2"])]);
    let cold = store.read(&fresh, ReadOptions::new()).await.unwrap();
    assert_eq!((cold.events.len(), cold.head), (0, known), "answered below the cached head");
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!((read.events.len(), read.head), (1, known), "answered below the cached head");
    store.commit(unrelated).await.unwrap();

    // A matching writer in flight, then a matching commit above it: the read must not answer
    // with a head at or above the writer's event.
    let mut related = store.begin().await.unwrap();
    let held = store.append_if_in(&mut related, &[tagged("mine:2")], None).await.unwrap();
    let above = store.append_if(&[tagged("mine:2")], None).await.unwrap();
    assert!(above.positions[0] > held.positions[0] && held.positions[0] > known);
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert!(read.head < held.positions[0], "the head passed a matching writer in flight");
    assert_eq!(read.events.len(), 1, "only the events up to the head");
    let stale = AppendCondition::none_after(mine.clone(), read.head);
    store.commit(related).await.unwrap();
    let refused = store.append_if(&[tagged("mine:2")], Some(&stale)).await;
    assert!(matches!(refused, Err(pupsourcing_core::Error::ConditionFailed { .. })));

    // Read-your-writes: the client's own append above the cached head is read.
    let own = store.append_if(&[tagged("mine:2")], None).await.unwrap().positions[0];
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.last().map(|e| e.position), Some(own));
    assert!(read.head >= own);
}

/// The read of [`DcbStore::read_in`] in a READ COMMITTED transaction of its own: the read
/// without the cached log head (the query's head, then the events up to it), as the oracle of
/// a read of the store's own in a state nobody changes meanwhile.
async fn read_without_the_cached_head(
    store: &PgEventStore,
    query: &Query,
    options: ReadOptions,
) -> ReadResult {
    let mut tx = store.begin().await.unwrap();
    let read = store.read_in(&mut tx, query, options).await.unwrap();
    store.rollback(tx).await.unwrap();
    read
}

/// The positions of the committed events carrying `tag` (of every event without one), in
/// position order: what a read capped at a sound head must return up to it.
async fn committed(store: &PgEventStore, tag: Option<&str>) -> Vec<Position> {
    let (schema, events) = (&store.config().schema, &store.config().tables.events);
    let sql = match tag {
        Some(_) => format!("SELECT global_position FROM {schema}.{events}_tags WHERE tag = $1"),
        None => format!("SELECT global_position FROM {schema}.{events} WHERE $1::text IS NULL"),
    };
    let mut positions: Vec<Position> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(tag)
        .fetch_all(store.pool())
        .await
        .unwrap();
    positions.sort_unstable();
    positions
}

/// Every read shape (each direction; `from` unset, at the first event, around the cached head
/// `known` and far above it; no limit, 0, 1, 2) of `query` (the events tagged `tag`, or all),
/// in a state nobody changes meanwhile: the events are exactly the committed ones the options
/// select up to the head returned, and that head is never above both the read's without the
/// cached head (the query's head) and `known` (the store's cached log head, which the caller
/// passes): each of those is sound, a head above both could pass a writer in flight.
async fn every_read_shape_agrees(
    store: &PgEventStore,
    query: &Query,
    tag: Option<&str>,
    known: Position,
) {
    let all = committed(store, tag).await;
    let froms = [None, Some(1), Some(known - 1), Some(known), Some(known + 1), Some(known + 2)];
    let froms = froms.into_iter().chain([Some(known + 100), Some(0)]);
    for from in froms {
        for limit in [None, Some(0), Some(1), Some(2)] {
            for backwards in [false, true] {
                let options = ReadOptions { from, limit, backwards };
                let read = store.read(query, options).await.unwrap();
                let oracle = read_without_the_cached_head(store, query, options).await;
                let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
                let capped = all.iter().copied().filter(|p| *p <= read.head);
                let mut want: Vec<Position> = match backwards {
                    false => capped.filter(|p| *p >= from.unwrap_or(1)).collect(),
                    true => capped.filter(|p| from.is_none_or(|f| *p <= f)).rev().collect(),
                };
                want.truncate(limit.unwrap_or(usize::MAX));
                assert_eq!(got, want, "events of {options:?} (head {}, known {known})", read.head);
                // Both heads are sound, so anything up to the higher one is (the query's head
                // can be the lower: see the test below).
                let bound = oracle.head.max(known);
                assert!(read.head <= bound, "head above both sound heads: {options:?}");
            }
        }
    }
}

/// The cached log head `H` and the query head `Q` computed in the same statement when a read
/// finds an event above `H`: `Q` can lie below `H`. An append reads the sequence for its
/// in-flight marker before it takes the marker's lock, so a writer that read it before `H` was
/// computed and registers after holds a marker below `H` (its events land above `H`). The read
/// must then drop what it found up to `H` and read up to `Q` only: keeping it would return
/// events above the head it returns. The writer in that window is played here by a
/// transaction holding such a marker and the query's key, as a real one does between taking
/// the marker and allocating. Every read shape is checked against the read without the cached
/// head, with that writer, with a real matching writer in flight, at rest, and on a new store
/// (cached head 0).
#[tokio::test]
async fn a_query_head_below_the_cached_head_caps_the_read() {
    use pupsourcing_core::dcb::query_keys;
    let Some(store) = common::fresh_store().await else { return };
    let mine = Query::from_items([QueryItem::tags(["mine:3"])]);

    // The store's lock namespace: the tag of a real writer's marker.
    let mut probe = store.begin().await.unwrap();
    store.append_if_in(&mut probe, &[tagged("probe:3")], None).await.unwrap();
    let tag: i64 = sqlx::query_scalar(
        "SELECT classid::bigint >> 15 FROM pg_locks WHERE locktype = 'advisory' \
         AND objsubid = 1 AND pid = pg_backend_pid()",
    )
    .fetch_one(&mut *probe)
    .await
    .unwrap();
    store.rollback(probe).await.unwrap();

    let first = store.append_if(&[tagged("mine:3")], None).await.unwrap().positions[0];
    let second = store.append_if(&[tagged("mine:3")], None).await.unwrap().positions[0];
    store.append_if(&[tagged("other:3")], None).await.unwrap();
    let known = store.head().await.unwrap();
    assert!(known > second && second > first);
    every_read_shape_agrees(&store, &mine, Some("mine:3"), known).await;

    // The writer between its marker (the sequence as it was at `first`) and its position.
    let max_keys = store.config().limits.max_lock_keys;
    let key = query_keys(u64::try_from(tag).unwrap(), &mine, max_keys)[0];
    let mut writer = store.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2), pg_advisory_xact_lock_shared($3)")
        .bind((key >> 32) as i32)
        .bind(key as i32)
        .bind((tag << 47) | first)
        .execute(&mut *writer)
        .await
        .unwrap();
    let above = store.append_if(&[tagged("mine:3")], None).await.unwrap().positions[0];
    assert!(above > known);
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    let found: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    assert_eq!((found, read.head), (vec![first], first), "capped at the writer's marker");
    every_read_shape_agrees(&store, &mine, Some("mine:3"), known).await;
    let new_store = PgEventStore::new(store.pool().clone(), store.config().clone());
    every_read_shape_agrees(&new_store, &mine, Some("mine:3"), 0).await;
    writer.rollback().await.unwrap();

    // A real matching writer in flight above the cached head, a matching commit above it.
    let mut related = store.begin().await.unwrap();
    store.append_if_in(&mut related, &[tagged("mine:3")], None).await.unwrap();
    store.append_if(&[tagged("mine:3")], None).await.unwrap();
    every_read_shape_agrees(&store, &mine, Some("mine:3"), known).await;
    every_read_shape_agrees(&new_store, &mine, Some("mine:3"), 0).await;
    store.commit(related).await.unwrap();

    // At rest, the cached head below the last matching events, then at the log's head.
    every_read_shape_agrees(&store, &mine, Some("mine:3"), known).await;
    let known = store.head().await.unwrap();
    every_read_shape_agrees(&store, &mine, Some("mine:3"), known).await;
    every_read_shape_agrees(&store, &Query::all(), None, known).await;
}

/// The command executor's write: the events and the command's record in one statement, the
/// record (with the events' positions) only when the events were appended.
#[tokio::test]
async fn a_command_is_recorded_with_its_events_or_not_at_all() {
    use pupsourcing_core::dcb::CommandRecord;
    let Some(store) = common::fresh_store().await else { return };
    let count = || async {
        let sql = format!("SELECT count(*) FROM {}.commands", store.config().schema);
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let query = Query::from_items([QueryItem::tags(["user:ada"])]);
    let record = CommandRecord {
        command_type: "Register".into(),
        data: serde_json::json!({ "user": "ada" }),
        metadata: Some(serde_json::json!({ "by": "test" })),
        positions: vec![],
    };
    let condition = AppendCondition::none_match(query.clone());
    let events = [tagged("user:ada"), tagged("user:ada")];
    let written = store.append_if_and_record(&events, Some(&condition), &record).await.unwrap();
    let sql = format!("SELECT positions, data, metadata FROM {}.commands", store.config().schema);
    let (positions, data, metadata): (Vec<i64>, serde_json::Value, Option<serde_json::Value>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap();
    assert_eq!(positions, written.positions);
    assert_eq!((data, metadata), (record.data.clone(), record.metadata.clone()));

    let one = [tagged("user:ada")];
    let refused = store.append_if_and_record(&one, Some(&condition), &record).await;
    assert!(matches!(refused, Err(pupsourcing_core::Error::ConditionFailed { .. })));
    assert_eq!(count().await, 1, "a refused command is not recorded");
    assert_eq!(store.read(&query, ReadOptions::new()).await.unwrap().events.len(), 2);

    let nothing = store.append_if_and_record(&[], Some(&condition), &record).await.unwrap();
    assert!(nothing.positions.is_empty());
    assert_eq!(count().await, 2, "a decision to append nothing is recorded");
}

/// A writer whose lock plan collapsed to the global key (more keys than `max_lock_keys`) holds
/// none of a query's own keys, only the global key exclusively: the query head's cheap answer
/// (the query's keys taken exclusively, the global key shared) must see it and hold the head
/// below its event, on the cached-head path and without it.
#[tokio::test]
async fn a_collapsed_writer_in_flight_holds_the_query_head_back() {
    let mut config =
        pupsourcing_core::StoreConfig::default().schema(&common::unique_schema()).unwrap();
    config.limits.max_lock_keys = 2;
    let Some(store) = common::store_with(config).await else { return };
    let mine = Query::from_items([QueryItem::tags(["mine:3"])]);
    let first = store.append_if(&[tagged("mine:3")], None).await.unwrap().positions[0];
    let known = store.head().await.unwrap();
    // Above the cached head: the read needs the query's head.
    let second = store.append_if(&[tagged("mine:3")], None).await.unwrap().positions[0];

    // Every other append waits for the collapsed writer (it holds the global key
    // exclusively), so the reads run while it is the only writer in flight.
    let mut collapsed = store.begin().await.unwrap();
    let wide = NewEvent::new("Tick", b"{}".to_vec()).with_tags(["mine:3", "b:3", "c:3", "d:3"]);
    let held = store.append_if_in(&mut collapsed, &[wide], None).await.unwrap().positions[0];
    assert!(held > second && second > known);
    for read in [
        store.read(&mine, ReadOptions::new()).await.unwrap(),
        read_without_the_cached_head(&store, &mine, ReadOptions::new()).await,
    ] {
        assert!(read.head < held, "the head {} passed a collapsed writer at {held}", read.head);
        assert_eq!(read.events.len(), 2, "only the events up to the head");
    }
    store.commit(collapsed).await.unwrap();
    let read = store.read(&mine, ReadOptions::new()).await.unwrap();
    let positions: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![first, second, held]);
}

/// A read on the caller's connection refuses a bad query as `read` does: each validates it
/// before any statement (`read_on` does not).
#[tokio::test]
async fn a_read_in_a_callers_transaction_refuses_a_bad_query() {
    let Some(store) = common::fresh_store().await else { return };
    let mut conn = store.pool().acquire().await.unwrap();
    let query = Query::from_items([QueryItem::default()]);
    let read = store.read_in(&mut conn, &query, ReadOptions::new()).await;
    assert!(
        matches!(
            read,
            Err(pupsourcing_core::Error::Validation(
                pupsourcing_core::ValidationError::EmptyQueryItem
            ))
        ),
        "{read:?}"
    );
}
