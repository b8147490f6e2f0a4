//! Group commit (src/append/group.rs): queued single-event appends written together must each
//! behave as if they ran alone.
//!
//! Each test first occupies the store's two writer slots with appends that wait on a head row
//! locked by an open transaction, so the appends under test queue up behind them; committing
//! that transaction (well within the writers' 200 ms lock timeout) releases them all at once
//! into the writer tasks, which take the queue in groups.

mod common;

use std::time::Duration;

use common::{SETTLE, queued};
use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, Query, QueryItem, ReadOptions,
};
use pupsourcing_core::{AppendResult, Error, EventStore, ExpectedVersion, NewEvent, Result};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_testkit::{event, new_stream};

const ROUNDS: usize = 5;

fn tagged(event_type: &str, tag: &str) -> NewEvent {
    NewEvent::new(event_type, b"{}".to_vec()).with_tags([tag])
}

/// How many transactions wrote the events with these positions.
async fn writing_transactions(store: &PgEventStore, positions: &[i64]) -> i64 {
    let sql = format!(
        "SELECT count(DISTINCT xmin::text) FROM {}.events WHERE global_position = ANY($1)",
        store.config().schema
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(positions)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn queued_disjoint_appends_are_written_together() {
    let Some(store) = common::fresh_store().await else { return };
    let appends = (0..8)
        .map(|i| {
            let store = store.clone();
            let boundary = format!("order:{i}");
            async move {
                let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags([
                    boundary.as_str(),
                ])]));
                store.append_if(&[tagged("Placed", &boundary)], Some(&cond)).await
            }
        })
        .collect();
    let results = queued(&store, appends).await;
    let positions: Vec<i64> =
        results.into_iter().map(|r| r.expect("disjoint boundaries all win").positions[0]).collect();
    // Two writer tasks share the 8 queued appends: far fewer transactions than appends.
    let transactions = writing_transactions(&store, &positions).await;
    assert!(transactions <= 4, "8 queued appends took {transactions} transactions");
}

#[tokio::test]
async fn queued_appends_on_one_boundary_have_one_winner() {
    let Some(store) = common::fresh_store().await else { return };
    for _ in 0..ROUNDS {
        let course = format!("course:{}", uuid::Uuid::now_v7());
        let query = Query::from_items([QueryItem::tags([course.as_str()])]);
        let head = store.read(&query, ReadOptions::new()).await.unwrap().head;
        let appends = (0..8)
            .map(|_| {
                let (store, query, course) = (store.clone(), query.clone(), course.clone());
                async move {
                    let cond = AppendCondition::none_after(query, head);
                    store.append_if(&[tagged("Subscribed", &course)], Some(&cond)).await
                }
            })
            .collect();
        let results = queued(&store, appends).await;
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{results:?}");
        assert!(
            results.iter().all(|r| matches!(r, Ok(_) | Err(Error::ConditionFailed { .. }))),
            "{results:?}"
        );
    }
}

#[tokio::test]
async fn queued_appends_keep_their_own_expected_versions() {
    let Some(store) = common::fresh_store().await else { return };
    for _ in 0..ROUNDS {
        let (fresh, existing) = (new_stream(), new_stream());
        store.append(&existing, ExpectedVersion::Any, &[event("Opened")]).await.unwrap();
        // An `Any`, a stale `Exact`, a `NoStream` on an existing stream, four racing
        // `Exact(1)` on one stream, and a good `NoStream`: queued together.
        let cases = [
            (fresh.clone(), ExpectedVersion::Any),
            (existing.clone(), ExpectedVersion::Exact(5)),
            (existing.clone(), ExpectedVersion::NoStream),
            (existing.clone(), ExpectedVersion::Exact(1)),
            (existing.clone(), ExpectedVersion::Exact(1)),
            (existing.clone(), ExpectedVersion::Exact(1)),
            (existing.clone(), ExpectedVersion::Exact(1)),
            (new_stream(), ExpectedVersion::NoStream),
        ];
        let appends = cases
            .into_iter()
            .map(|(stream, expected)| {
                let store = store.clone();
                async move { store.append(&stream, expected, &[event("Next")]).await }
            })
            .collect();
        let results = queued(&store, appends).await;
        let versions: Vec<Option<i64>> =
            results.iter().map(|r| r.as_ref().ok().map(|w| w.versions[0])).collect();
        assert_eq!(versions[0], Some(1), "{results:?}");
        assert!(matches!(results[1], Err(Error::Concurrency { actual: _, .. })), "{results:?}");
        assert!(matches!(results[2], Err(Error::Concurrency { .. })), "{results:?}");
        let exact_wins: Vec<_> = versions[3..7].iter().flatten().collect();
        assert_eq!(exact_wins, [&2], "{results:?}");
        assert_eq!(versions[7], Some(1), "{results:?}");
        let stored = store.stream_version(&existing).await.unwrap();
        assert_eq!(stored, 2, "one Exact(1) won, nothing else touched the stream");
    }
}

/// The ordinary aggregate lifecycle shares groups: first events (`NoStream`, and `Exact(0)`,
/// which means the same), later ones (`Exact(v)`) and `Any` appends of different streams are
/// written together, each with its own version.
#[tokio::test]
async fn queued_appends_of_every_expected_kind_are_written_together() {
    let Some(store) = common::fresh_store().await else { return };
    let existing: Vec<_> = (0..6).map(|_| new_stream()).collect();
    for stream in &existing {
        store.append(stream, ExpectedVersion::NoStream, &[event("Opened")]).await.unwrap();
    }
    let mut cases = Vec::new();
    for stream in &existing {
        cases.push((stream.clone(), ExpectedVersion::Exact(1), 2));
    }
    for _ in 0..6 {
        cases.push((new_stream(), ExpectedVersion::NoStream, 1));
        cases.push((new_stream(), ExpectedVersion::Exact(0), 1));
    }
    let any = new_stream();
    store.append(&any, ExpectedVersion::NoStream, &[event("Opened")]).await.unwrap();
    cases.push((any, ExpectedVersion::Any, 2));
    cases.push((new_stream(), ExpectedVersion::Any, 1));
    let appends = cases
        .iter()
        .map(|(stream, expected, _)| {
            let (store, stream, expected) = (store.clone(), stream.clone(), *expected);
            async move { store.append(&stream, expected, &[event("Next")]).await }
        })
        .collect();
    let results = queued(&store, appends).await;
    let mut positions = Vec::new();
    for ((stream, expected, version), result) in cases.iter().zip(results) {
        let written = result.unwrap_or_else(|e| panic!("{stream} {expected}: {e}"));
        assert_eq!(written.versions, [*version], "{stream} {expected}");
        positions.push(written.positions[0]);
    }
    for stream in &existing {
        assert_eq!(store.stream_version(stream).await.unwrap(), 2);
    }
    // Two writer tasks share the 20 queued appends.
    let transactions = writing_transactions(&store, &positions).await;
    assert!(transactions <= 4, "20 queued appends took {transactions} transactions");
}

/// A group holds the locks of all its requests, so it could deadlock with a caller's
/// transaction where each request alone would not: here the group holds stream A's head and
/// waits for B's, which the transaction holds, and the transaction then wants A. The group gives
/// up after its lock timeout (200 ms), long before PostgreSQL's deadlock detection (1 s) would
/// abort one side; its requests then run alone and the transaction never notices.
#[tokio::test]
async fn a_group_gives_way_to_a_callers_transaction() {
    let Some(store) = common::fresh_store().await else { return };
    let (mut a, mut b) = (new_stream(), new_stream());
    if (a.aggregate_id) > (b.aggregate_id) {
        std::mem::swap(&mut a, &mut b); // the group locks heads in sorted order: A, then B
    }
    store.append(&a, ExpectedVersion::Any, &[event("Opened")]).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &b, ExpectedVersion::Any, &[event("Held")]).await.unwrap();
    // One append runs the direct path and waits on B; the two below queue and form one group.
    let spawn = |stream: &pupsourcing_core::StreamId| {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(
            async move { store.append(&stream, ExpectedVersion::Any, &[event("E")]).await },
        )
    };
    let direct = spawn(&b);
    tokio::time::sleep(SETTLE).await;
    let grouped = [spawn(&a), spawn(&b)];
    tokio::time::sleep(SETTLE).await;
    let started = std::time::Instant::now();
    store.append_in(&mut tx, &a, ExpectedVersion::Any, &[event("Mine")]).await.unwrap();
    let waited = started.elapsed();
    store.commit(tx).await.unwrap();
    assert!(waited < Duration::from_millis(800), "the transaction waited {waited:?}");
    direct.await.unwrap().unwrap();
    for task in grouped {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.stream_version(&a).await.unwrap(), 3);
    assert_eq!(store.stream_version(&b).await.unwrap(), 3);
}

/// Appends with `Any` to existing streams (the commonest append) are written together too.
#[tokio::test]
async fn queued_any_appends_to_existing_streams_are_written_together() {
    let Some(store) = common::fresh_store().await else { return };
    let streams: Vec<_> = (0..12).map(|_| new_stream()).collect();
    for stream in &streams {
        store.append(stream, ExpectedVersion::NoStream, &[event("Opened")]).await.unwrap();
    }
    let appends = streams
        .iter()
        .map(|stream| {
            let (store, stream) = (store.clone(), stream.clone());
            async move { store.append(&stream, ExpectedVersion::Any, &[event("Next")]).await }
        })
        .collect();
    let results = queued(&store, appends).await;
    let positions: Vec<i64> = results.into_iter().map(|r| r.unwrap().positions[0]).collect();
    let transactions = writing_transactions(&store, &positions).await;
    assert!(transactions <= 4, "12 queued appends took {transactions} transactions");
}

/// A queued recorded command (the executor's write) with its outcome: its event's id and type.
struct Recorded {
    id: usize,
    event: NewEvent,
    result: Result<AppendResult>,
}

/// Queues `commands` (boundary tag, condition) as recorded appends
/// (`DcbStore::append_if_and_record`), each with a command whose data holds `run` and its index.
async fn queued_commands(
    store: &PgEventStore,
    run: &str,
    commands: Vec<(String, AppendCondition)>,
) -> Vec<Recorded> {
    let events: Vec<NewEvent> = commands.iter().map(|(tag, _)| tagged("Decided", tag)).collect();
    let appends = commands
        .into_iter()
        .zip(&events)
        .enumerate()
        .map(|(id, ((_, condition), event))| {
            let (store, event) = (store.clone(), event.clone());
            let record = CommandRecord {
                command_type: "Decide".into(),
                data: serde_json::json!({ "run": run, "id": id }),
                metadata: Some(serde_json::json!({ "by": "test" })),
                positions: Vec::new(),
            };
            async move { store.append_if_and_record(&[event], Some(&condition), &record).await }
        })
        .collect();
    let results = queued(store, appends).await;
    events
        .into_iter()
        .zip(results)
        .enumerate()
        .map(|(id, (event, result))| Recorded { id, event, result })
        .collect()
}

/// The command rows of `run`: command index -> (positions, the row's xmin: the transaction that
/// wrote it).
async fn command_rows(
    store: &PgEventStore,
    run: &str,
) -> std::collections::HashMap<usize, (Vec<i64>, String)> {
    let sql = format!(
        "SELECT (data->>'id')::bigint, positions, xmin::text FROM {}.{} \
          WHERE data->>'run' = $1 AND metadata->>'by' = 'test'",
        store.config().schema,
        store.config().tables.commands,
    );
    let rows: Vec<(i64, Vec<i64>, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(run).fetch_all(store.pool()).await.unwrap();
    let mut by_id = std::collections::HashMap::new();
    for (id, positions, xmin) in rows {
        let previous = by_id.insert(id as usize, (positions, xmin));
        assert!(previous.is_none(), "command {id} of {run} recorded twice");
    }
    by_id
}

/// Whether an event with this id is stored.
async fn stored(store: &PgEventStore, event: &NewEvent) -> bool {
    let sql = format!("SELECT count(*) FROM {}.events WHERE event_id = $1", store.config().schema);
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(event.event_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    n > 0
}

/// The command executor's single-event write (`append_if_and_record`) is group-committed: queued
/// recorded commands of disjoint boundaries are written by few transactions (their command
/// rows share the xmin of the group's transaction). A request whose condition fails inside a group (its `after` is
/// stale) writes neither its event nor its record while its group mates commit with theirs; of
/// several racing on one boundary, exactly one writes both.
#[tokio::test]
async fn queued_recorded_commands_are_written_together_and_only_when_appended() {
    let Some(store) = common::fresh_store().await else { return };
    let mut grouped_rounds = 0;
    for round in 0..20 {
        let run = format!("{round}-{}", uuid::Uuid::now_v7());
        let boundary = |name: &str| format!("{name}:{run}");
        let query = |tag: &str| Query::from_items([QueryItem::tags([tag])]);
        // A boundary that moves after this client read it: its condition fails in the group.
        let stale = boundary("stale");
        let head = store.read(&query(&stale), ReadOptions::new()).await.unwrap().head;
        store.append_if(&[tagged("Moved", &stale)], None).await.unwrap();
        let contested = boundary("contested");
        let contested_head = store.read(&query(&contested), ReadOptions::new()).await.unwrap().head;
        let mut commands = Vec::new();
        for i in 0..12 {
            let own = boundary(&format!("own{i}"));
            commands.push((own.clone(), AppendCondition::none_match(query(&own))));
            if i == 5 {
                commands.push((stale.clone(), AppendCondition::none_after(query(&stale), head)));
            }
            if i % 4 == 0 {
                let condition = AppendCondition::none_after(query(&contested), contested_head);
                commands.push((contested.clone(), condition));
            }
        }
        let results = queued_commands(&store, &run, commands).await;
        let rows = command_rows(&store, &run).await;
        let (mut contested_wins, mut own_xmins) = (0, std::collections::HashSet::new());
        for Recorded { id, event, result } in &results {
            let tag = &event.tags[0];
            match result {
                Ok(written) => {
                    let (positions, xmin) =
                        rows.get(id).unwrap_or_else(|| panic!("{tag}: appended, not recorded"));
                    assert_eq!(positions, &written.positions, "{tag}");
                    assert!(stored(&store, event).await, "{tag}: recorded, event not stored");
                    if tag.starts_with("own") {
                        own_xmins.insert(xmin.clone());
                    }
                    contested_wins += usize::from(tag.starts_with("contested"));
                    assert!(!tag.starts_with("stale"), "the stale condition passed");
                }
                Err(Error::ConditionFailed { .. }) => {
                    assert!(!tag.starts_with("own"), "{tag}: a disjoint boundary failed");
                    assert!(!rows.contains_key(id), "{tag}: failed, but recorded");
                    assert!(!stored(&store, event).await, "{tag}: failed, but its event stored");
                }
                Err(other) => panic!("{tag}: {other}"),
            }
        }
        assert_eq!(contested_wins, 1, "round {round}");
        assert_eq!(rows.len(), 12 + 1, "round {round}: 12 own boundaries and one contested win");
        // Two writer tasks share 12 disjoint commands (and the others); one transaction per
        // command (the path without group commit) would give 12.
        if own_xmins.len() <= 4 {
            grouped_rounds += 1;
        }
    }
    assert!(grouped_rounds >= 18, "only {grouped_rounds} of 20 rounds were group-committed");
}

/// A writer task that waits on a lock held by a long transaction gives up after the writers'
/// lock timeout (200 ms) and leaves its request to run alone, so the appends queued behind it
/// are not held until that transaction ends (the writers' sessions carry the timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_waiting_on_a_lock_gives_up_and_serves_the_queue() {
    let Some(store) = common::fresh_store().await else { return };
    // The first waits alone on the direct path, the second in a writer task.
    let (tx, blockers) = common::hold_the_writer_slots(&store, &store).await;
    let started = std::time::Instant::now();
    let (stream, events) = (new_stream(), [event("Free")]);
    let free = store.append(&stream, ExpectedVersion::NoStream, &events);
    let free = tokio::time::timeout(Duration::from_secs(1), free).await;
    let waited = started.elapsed();
    store.commit(tx).await.unwrap();
    assert!(matches!(free, Ok(Ok(_))), "the queued append waited for the transaction: {free:?}");
    assert!(waited < Duration::from_millis(800), "{waited:?}");
    for blocker in blockers {
        blocker.await.unwrap().unwrap();
    }
}

/// The writers' connections carry the store's `application_name`: a store of its own in a
/// new schema, named `name`.
async fn named_store(name: &str) -> Option<PgEventStore> {
    use pupsourcing_core::{ConnectOptions, StoreConfig};
    if let Err(err) = common::probe().await {
        return pupsourcing_testkit::unreachable("PostgreSQL", err);
    }
    let url = common::url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}application_name={name}");
    let config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let options = ConnectOptions::new().max_connections(8);
    let store = PgEventStore::connect_with(&url, config, options).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// Eight queued appends to new streams: each must be stored exactly once, at version 1.
async fn queued_round(store: &PgEventStore) -> Vec<i64> {
    let streams: Vec<_> = (0..8).map(|_| new_stream()).collect();
    let appends = streams
        .iter()
        .map(|stream| {
            let (store, stream) = (store.clone(), stream.clone());
            async move { store.append(&stream, ExpectedVersion::NoStream, &[event("A")]).await }
        })
        .collect();
    let results = queued(store, appends).await;
    let mut positions = Vec::new();
    for (stream, result) in streams.iter().zip(results) {
        let result = result.expect("a queued append to a new stream is stored");
        assert_eq!(result.versions, vec![1], "{stream}");
        assert!(!result.replayed, "{stream}");
        let stored =
            store.read_stream(stream, pupsourcing_core::VersionRange::all()).await.unwrap();
        assert_eq!(stored.len(), 1, "{stream} holds {} events", stored.len());
        positions.push(result.positions[0]);
    }
    positions
}

/// A writer connection the server ended while it sat idle (a restart, `idle_session_timeout`,
/// `pg_terminate_backend`) fails its next group, whose requests then run alone: none is lost or
/// stored twice, and the next groups run on new writer connections with the writers' settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_connections_ended_by_the_server_lose_no_append() {
    let name = format!("pup_writers_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let Some(store) = named_store(&name).await else { return };
    queued_round(&store).await;
    // The writer sessions are the ones whose last statement was the group statement.
    let admin = sqlx::PgPool::connect(&common::url()).await.unwrap();
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = $1 AND query LIKE '-- Group commit: several%'";
    let ended: i64 = sqlx::query_scalar(terminate).bind(&name).fetch_one(&admin).await.unwrap();
    assert!(ended >= 1, "no writer session found to end");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        queued_round(&store).await;
    }
    // The writers work again: grouped, with their lock timeout.
    let positions = queued_round(&store).await;
    let transactions = writing_transactions(&store, &positions).await;
    assert!(transactions <= 4, "8 queued appends took {transactions} transactions");
    let settings = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                    AND query LIKE '-- Group commit: several%'";
    let writers: i64 = sqlx::query_scalar(settings).bind(&name).fetch_one(&admin).await.unwrap();
    assert!((1..=2).contains(&writers), "{writers} writer sessions");
    store.close().await;
    admin.close().await;
}

/// The sessions of the test server named `name`.
async fn session_pids(admin: &sqlx::PgPool, name: &str) -> Vec<i32> {
    let sql = "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid";
    sqlx::query_scalar(sql).bind(name).fetch_all(admin).await.unwrap()
}

/// A group that gives up on a lock (the writers' lock timeout, SQLSTATE 55P03) leaves its
/// writer connection clean (the statement's implicit transaction rolled back by the server)
/// and working, so it is kept: no session of the store is closed, and the next groups run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_connection_is_kept_after_a_lock_timeout() {
    let name = format!("pup_writers_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let Some(store) = named_store(&name).await else { return };
    let holder = common::store_with(store.config().clone()).await.unwrap();
    let admin = sqlx::PgPool::connect(&common::url()).await.unwrap();
    queued_round(&store).await;
    let before = session_pids(&admin, &name).await;

    let (tx, blockers) = common::hold_the_writer_slots(&holder, &store).await;
    // Past the writers' lock timeout: the writer's group has given up.
    tokio::time::sleep(Duration::from_millis(400)).await;
    holder.commit(tx).await.unwrap();
    for blocker in blockers {
        blocker.await.unwrap().unwrap();
    }
    let after = session_pids(&admin, &name).await;
    for pid in &before {
        assert!(
            after.contains(pid),
            "session {pid} was closed: before {before:?}, after {after:?}"
        );
    }
    let positions = queued_round(&store).await;
    let transactions = writing_transactions(&store, &positions).await;
    assert!(transactions <= 4, "8 queued appends took {transactions} transactions");
    store.close().await;
    holder.close().await;
    admin.close().await;
}

/// A writer connection the server ends while its group runs (here waiting on a lock) fails
/// the group as a whole: nothing of it is stored, and each request runs alone, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_connection_ended_during_its_group_loses_no_append() {
    let name = format!("pup_writers_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let Some(store) = named_store(&name).await else { return };
    let holder = common::store_with(store.config().clone()).await.unwrap();
    let admin = sqlx::PgPool::connect(&common::url()).await.unwrap();
    let blocked = new_stream();
    let mut tx = holder.begin().await.unwrap();
    holder.append_in(&mut tx, &blocked, ExpectedVersion::Any, &[event("Held")]).await.unwrap();
    // The direct path waits on the lock; then a group of eight, one on the locked stream.
    let direct = {
        let (store, blocked) = (store.clone(), blocked.clone());
        tokio::spawn(async move {
            store.append(&blocked, ExpectedVersion::Any, &[event("Blocked")]).await
        })
    };
    tokio::time::sleep(SETTLE).await;
    let mut streams: Vec<_> = (0..7).map(|_| new_stream()).collect();
    streams.push(blocked.clone());
    let queued: Vec<_> = streams
        .iter()
        .map(|stream| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move {
                store.append(&stream, ExpectedVersion::Any, &[event("Queued")]).await
            })
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = $1 AND state = 'active' \
                     AND query LIKE '-- Group commit: several%'";
    let ended: i64 = sqlx::query_scalar(terminate).bind(&name).fetch_one(&admin).await.unwrap();
    assert_eq!(ended, 1, "the group waiting on the lock");
    tokio::time::sleep(SETTLE).await;
    holder.commit(tx).await.unwrap();
    direct.await.unwrap().unwrap();
    for task in queued {
        let result = task.await.unwrap().expect("a queued append is stored");
        assert!(!result.replayed);
    }
    for stream in &streams[..7] {
        let stored = store.read_stream(stream, pupsourcing_core::VersionRange::all()).await;
        assert_eq!(stored.unwrap().len(), 1, "{stream}");
    }
    let stored = store.read_stream(&blocked, pupsourcing_core::VersionRange::all()).await.unwrap();
    let mut types: Vec<&str> = stored.iter().map(|e| e.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["Blocked", "Held", "Queued"], "once each");
    store.close().await;
    holder.close().await;
    admin.close().await;
}
