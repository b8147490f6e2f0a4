//! Adversarial races on the query-scoped head, the command executor's one-statement
//! path, and cancellation of the store's own transactions.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pupsourcing_core::dcb::{AppendCondition, DcbStore, Query, QueryItem, ReadOptions};
use pupsourcing_core::{EventStore, ExpectedVersion, NewEvent, StoreConfig, StreamId};
use pupsourcing_postgres::PgEventStore;
use uuid::Uuid;

fn rnd(n: u32) -> u32 {
    let b = Uuid::new_v4();
    let b = b.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % n
}

fn ev(t: &str, tags: &[String]) -> NewEvent {
    NewEvent::new(t, b"{}".to_vec()).with_tags(tags.iter().cloned())
}

/// The multi-item query under test: type-only, tag-only and type+tag items.
fn hot_query(k: &str) -> Query {
    Query::from_items([
        QueryItem::types([format!("HotType{k}")]),
        QueryItem::tags([format!("hot:{k}"), format!("hot2:{k}")]),
        QueryItem::types([format!("Typed{k}")]).with_tags([format!("tt:{k}")]),
    ])
}

/// Whether an event of type `t` with `tags` matches [`hot_query`].
fn matches(k: &str, t: &str, tags: &[String]) -> bool {
    let has = |x: String| tags.contains(&x);
    t == format!("HotType{k}")
        || (has(format!("hot:{k}")) && has(format!("hot2:{k}")))
        || (t == format!("Typed{k}") && has(format!("tt:{k}")))
}

/// A random event: matching or not, through one of several shapes.
fn random_event(k: &str, w: usize) -> NewEvent {
    let cold = format!("cold:{w}");
    match rnd(8) {
        0 => ev(&format!("HotType{k}"), &[cold]),
        1 => ev("Tick", &[format!("hot:{k}"), format!("hot2:{k}")]),
        2 => ev("Tick", &[format!("hot:{k}")]), // one tag of two: no match
        3 => ev(&format!("Typed{k}"), &[format!("tt:{k}"), cold]),
        4 => ev(&format!("Typed{k}"), &[cold]), // type without the tag: no match
        5 => ev("Tick", &[format!("tt:{k}")]),  // tag without the type: no match
        _ => ev("Tick", &[cold]),
    }
}

fn is_match(k: &str, e: &NewEvent) -> bool {
    matches(k, &e.event_type, &e.tags)
}

/// Every append path at once, committing out of order (caller transactions held open, some
/// rolled back, savepoints rolled back and released), against tailing readers of the
/// multi-item query, of `Query::all()` and of the global log. Each must see every committed
/// matching event exactly once.
async fn tail_race(store: PgEventStore, secs: u64) {
    let k = Uuid::now_v7().simple().to_string();
    let q = hot_query(&k);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let writing = Arc::new(AtomicBool::new(true));

    let tail = |query: Query| {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            loop {
                let still = writing.load(Ordering::SeqCst);
                let read = store.read(&query, ReadOptions::new().after(after)).await.unwrap();
                let caught_up = read.events.is_empty();
                for e in &read.events {
                    assert!(e.position > after && e.position <= read.head);
                }
                seen.extend(
                    read.events.iter().map(|e| (e.event_id, e.event_type.clone(), e.tags.clone())),
                );
                after = after.max(read.head);
                if caught_up && !still {
                    return seen;
                }
                if caught_up {
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
        })
    };
    let hot_reader = tail(q.clone());
    let all_reader = tail(Query::all());
    let log_reader = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut from = 1;
            loop {
                let still = writing.load(Ordering::SeqCst);
                let page = store.read_all(from, 500).await.unwrap();
                let caught_up = page.is_empty();
                if let Some(last) = page.last() {
                    from = last.position + 1;
                }
                seen.extend(page.iter().map(|e| e.event_id));
                if caught_up && !still {
                    return seen;
                }
                if caught_up {
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
        })
    };

    let writers: Vec<_> = (0..10usize)
        .map(|w| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                let mut committed: Vec<NewEvent> = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let hold = Duration::from_millis(u64::from(rnd(6)));
                    match w {
                        // The store's own single appends: direct / group commit.
                        0 | 1 => {
                            let e = random_event(&k, w);
                            store.append_if(std::slice::from_ref(&e), None).await.unwrap();
                            committed.push(e);
                        }
                        // Aggregate streams with tags: NoStream then Exact, direct / group.
                        2 => {
                            let s = StreamId::new("Agg", Uuid::now_v7());
                            let a = random_event(&k, w);
                            let b = random_event(&k, w);
                            store
                                .append(&s, ExpectedVersion::NoStream, std::slice::from_ref(&a))
                                .await
                                .unwrap();
                            store
                                .append(&s, ExpectedVersion::Exact(1), std::slice::from_ref(&b))
                                .await
                                .unwrap();
                            committed.extend([a, b]);
                        }
                        // Batches through the function, some collapsing to the global key.
                        3 => {
                            let mut batch: Vec<NewEvent> =
                                (0..3).map(|_| random_event(&k, w)).collect();
                            if n.is_multiple_of(3) {
                                // many distinct tags: more keys than max_lock_keys (16)
                                let tags: Vec<String> =
                                    (0..12).map(|i| format!("x{i}:{n}")).collect();
                                batch.push(ev("Tick", &tags));
                                batch.push(ev(&format!("HotType{k}"), &tags));
                            }
                            store.append_if(&batch, None).await.unwrap();
                            committed.extend(batch);
                        }
                        // Caller transaction: two appends, held open, 20% rolled back.
                        4 | 5 => {
                            let a = random_event(&k, w);
                            let b = random_event(&k, w);
                            let mut tx = store.begin().await.unwrap();
                            store
                                .append_if_in(&mut tx, std::slice::from_ref(&a), None)
                                .await
                                .unwrap();
                            tokio::time::sleep(hold / 2).await;
                            store
                                .append_if_in(&mut tx, std::slice::from_ref(&b), None)
                                .await
                                .unwrap();
                            tokio::time::sleep(hold).await;
                            if rnd(5) == 0 {
                                store.rollback(tx).await.unwrap();
                            } else {
                                store.commit(tx).await.unwrap();
                                committed.extend([a, b]);
                            }
                        }
                        // Savepoints: a matching append rolled back to a savepoint, then a
                        // released one, with an unrelated append first (its marker lower).
                        6 => {
                            let first = ev("Tick", &[format!("cold:{w}")]);
                            let undone = ev(&format!("HotType{k}"), &[]);
                            let kept = random_event(&k, w);
                            let mut tx = store.begin().await.unwrap();
                            store
                                .append_if_in(&mut tx, std::slice::from_ref(&first), None)
                                .await
                                .unwrap();
                            sqlx::raw_sql("SAVEPOINT s1").execute(&mut *tx).await.unwrap();
                            store
                                .append_if_in(&mut tx, std::slice::from_ref(&undone), None)
                                .await
                                .unwrap();
                            tokio::time::sleep(hold / 2).await;
                            sqlx::raw_sql("ROLLBACK TO SAVEPOINT s1")
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                            sqlx::raw_sql("SAVEPOINT s2").execute(&mut *tx).await.unwrap();
                            store
                                .append_if_in(&mut tx, std::slice::from_ref(&kept), None)
                                .await
                                .unwrap();
                            sqlx::raw_sql("RELEASE SAVEPOINT s2").execute(&mut *tx).await.unwrap();
                            tokio::time::sleep(hold).await;
                            store.commit(tx).await.unwrap();
                            committed.extend([first, kept]);
                        }
                        // Caller transaction with an aggregate append and a DCB batch.
                        7 => {
                            let s = StreamId::new("Agg", Uuid::now_v7());
                            let a = random_event(&k, w);
                            let b: Vec<NewEvent> = (0..2).map(|_| random_event(&k, w)).collect();
                            let mut tx = store.begin().await.unwrap();
                            store
                                .append_in(
                                    &mut tx,
                                    &s,
                                    ExpectedVersion::Any,
                                    std::slice::from_ref(&a),
                                )
                                .await
                                .unwrap();
                            store.append_if_in(&mut tx, &b, None).await.unwrap();
                            tokio::time::sleep(hold).await;
                            store.commit(tx).await.unwrap();
                            committed.push(a);
                            committed.extend(b);
                        }
                        // Many concurrent single appends: group commit with several requests.
                        _ => {
                            let es: Vec<NewEvent> = (0..4).map(|_| random_event(&k, w)).collect();
                            let futs =
                                es.iter().map(|e| store.append_if(std::slice::from_ref(e), None));
                            for r in futures_util::future::join_all(futs).await {
                                r.unwrap();
                            }
                            committed.extend(es);
                        }
                    }
                }
                committed
            })
        })
        .collect();

    let mut committed = Vec::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    writing.store(false, Ordering::SeqCst);
    let hot_seen = hot_reader.await.unwrap();
    let all_seen = all_reader.await.unwrap();
    let log_seen = log_reader.await.unwrap();

    let hot_ids: HashSet<Uuid> = hot_seen.iter().map(|(id, ..)| *id).collect();
    assert_eq!(hot_ids.len(), hot_seen.len(), "an event was read twice");
    for (_, t, tags) in &hot_seen {
        assert!(matches(&k, t, tags), "a non-matching event was read: {t} {tags:?}");
    }
    let want: Vec<&NewEvent> = committed.iter().filter(|e| is_match(&k, e)).collect();
    let missed = want.iter().filter(|e| !hot_ids.contains(&e.event_id)).count();
    assert_eq!(missed, 0, "query tail skipped {missed} of {} matching events", want.len());
    assert_eq!(hot_ids.len(), want.len(), "query tail read an event that never committed");

    let all_ids: HashSet<Uuid> = all_seen.iter().map(|(id, ..)| *id).collect();
    let log_ids: HashSet<Uuid> = log_seen.iter().copied().collect();
    let missed_all = committed.iter().filter(|e| !all_ids.contains(&e.event_id)).count();
    let missed_log = committed.iter().filter(|e| !log_ids.contains(&e.event_id)).count();
    assert_eq!(missed_all, 0, "Query::all() tail skipped {missed_all} of {}", committed.len());
    assert_eq!(missed_log, 0, "read_all tail skipped {missed_log} of {}", committed.len());
    assert_eq!(all_ids.len(), committed.len());
    assert_eq!(log_ids.len(), committed.len());
    assert!(want.len() > 100, "only {} matching events", want.len());
}

async fn small_keys_store() -> Option<PgEventStore> {
    let mut config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    config.limits.max_lock_keys = 16;
    common::store_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_path_query_tails_never_skip() {
    let Some(store) = small_keys_store().await else { return };
    tail_race(store, 4).await;
}

/// Conditional appends with `after` = the head of their read, racing each other and
/// unconditional writers on every path: a success at position P after head H means no
/// matching event may exist in (H, P) (it would have been seen by the check or waited for).
async fn condition_race(store: PgEventStore, secs: u64) {
    let k = Uuid::now_v7().simple().to_string();
    let q = hot_query(&k);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    // Keeps the store's cached log head fresh, so deciders' reads are often answered below
    // it without the query's head (dcb::Below::read): their heads must be as sound.
    {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                store.head().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Vec::new()
        }));
    }
    // Background writers: same shapes as the tail race (own, group, caller tx, batch).
    for w in 0..4usize {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let e = random_event(&k, w);
                match w {
                    0 => {
                        store.append_if(std::slice::from_ref(&e), None).await.unwrap();
                    }
                    1 => {
                        let s = StreamId::new("Agg", Uuid::now_v7());
                        store
                            .append(&s, ExpectedVersion::NoStream, std::slice::from_ref(&e))
                            .await
                            .unwrap();
                    }
                    2 => {
                        let mut tx = store.begin().await.unwrap();
                        store.append_if_in(&mut tx, std::slice::from_ref(&e), None).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(u64::from(rnd(4)))).await;
                        store.commit(tx).await.unwrap();
                    }
                    _ => {
                        let mut batch = vec![e, random_event(&k, w)];
                        if n % 2 == 0 {
                            let tags: Vec<String> = (0..12).map(|i| format!("y{i}:{n}")).collect();
                            batch.push(ev("Tick", &tags));
                        }
                        store.append_if(&batch, None).await.unwrap();
                    }
                }
                tokio::time::sleep(Duration::from_millis(u64::from(5 + rnd(20)))).await;
            }
            Vec::new()
        }));
    }
    // Deciders.
    for d in 0..6usize {
        let (store, k, q) = (store.clone(), k.clone(), q.clone());
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            while Instant::now() < deadline {
                let read = store.read(&q, ReadOptions::new()).await.unwrap();
                let shape = rnd(3);
                let e = match shape {
                    0 => ev(&format!("HotType{k}"), &[]),
                    1 => ev("Tick", &[format!("hot:{k}"), format!("hot2:{k}")]),
                    _ => ev(&format!("Typed{k}"), &[format!("tt:{k}")]),
                };
                let cond = AppendCondition::new(q.clone(), Some(read.head));
                let r = if d % 2 == 0 {
                    store.append_if(std::slice::from_ref(&e), Some(&cond)).await
                } else {
                    let mut tx = store.begin().await.unwrap();
                    let r =
                        store.append_if_in(&mut tx, std::slice::from_ref(&e), Some(&cond)).await;
                    if r.is_ok() {
                        store.commit(tx).await.unwrap();
                    }
                    r
                };
                match r {
                    Ok(a) => wins.push((read.head, a.positions[0])),
                    Err(pupsourcing_core::Error::ConditionFailed { .. }) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            wins
        }));
    }
    let mut wins = Vec::new();
    for t in tasks {
        wins.extend(t.await.unwrap());
    }
    let all = store.read(&q, ReadOptions::new()).await.unwrap().events;
    let positions: Vec<i64> = all.iter().map(|e| e.position).collect();
    for (h, p) in &wins {
        let inside: Vec<_> = positions.iter().filter(|x| **x > *h && **x < *p).collect();
        assert!(inside.is_empty(), "win at {p} after head {h}, but matching events at {inside:?}");
    }
    // The race must have decided something; how much depends on the machine's load.
    assert!(!wins.is_empty(), "no decider ever won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditions_after_query_heads_never_miss() {
    let Some(store) = small_keys_store().await else { return };
    condition_race(store, 4).await;
}

// ---------------------------------------------------------------------------------------
// Area 2: the command executor.

use pupsourcing_core::dcb::{
    CommandExecutor, CommandHandler, DecisionModel, Handle, StateProjector, States,
};

/// Reserves a seat once: `{"seat": tag, "id": event id, "empty": bool}`.
struct Reserve;

impl CommandHandler for Reserve {
    type Command = serde_json::Value;
    type Error = String;
    type Handles = Handle<bool>;
    fn command_type(&self, _: &serde_json::Value) -> String {
        "Reserve".into()
    }
    fn model(&self, c: &serde_json::Value, model: &mut DecisionModel) -> Handle<bool> {
        let seat = c["seat"].as_str().unwrap().to_string();
        model.add(StateProjector::new(
            "taken",
            Query::from_items([QueryItem::tags([seat])]),
            false,
            |_, _| true,
        ))
    }
    fn decide(
        &self,
        c: &serde_json::Value,
        h: &Handle<bool>,
        s: &States,
    ) -> Result<Vec<NewEvent>, String> {
        if *s.get(*h) {
            return Err("taken".into());
        }
        if c["empty"].as_bool().unwrap_or(false) {
            return Ok(Vec::new());
        }
        let id: Uuid = c["id"].as_str().unwrap().parse().unwrap();
        let seat = c["seat"].as_str().unwrap().to_string();
        Ok(vec![NewEvent::new("Reserved", b"{}".to_vec()).with_id(id).with_tags([seat])])
    }
}

async fn commands(store: &PgEventStore) -> Vec<(String, Vec<i64>)> {
    let c = store.config();
    let sql = format!(
        "SELECT data->>'seat', positions FROM \"{}\".\"{}\"",
        c.schema.as_str(),
        c.tables.commands.as_str()
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(store.pool()).await.unwrap()
}

/// Many executors race for each seat: exactly one wins; with records, every recorded command
/// names exactly its appended events, and every appended event has its record.
async fn seat_race(store: PgEventStore, record: bool, rounds: usize) {
    let executor = CommandExecutor::new(store.clone()).record_commands(record).max_attempts(10);
    let mut seats = Vec::new();
    for _ in 0..rounds {
        let seat = format!("seat:{}", Uuid::now_v7());
        seats.push(seat.clone());
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (executor, seat) = (executor.clone(), seat.clone());
                tokio::spawn(async move {
                    let cmd = serde_json::json!({"seat": seat, "id": Uuid::now_v7().to_string()});
                    executor.execute(&Reserve, &cmd).await
                })
            })
            .collect();
        let mut wins = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(o) => {
                    assert_eq!(o.positions.len(), 1);
                    wins += 1;
                }
                Err(pupsourcing_core::dcb::ExecuteError::Rejected(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(wins, 1, "exactly one reservation wins");
        let read = store
            .read(&Query::from_items([QueryItem::tags([seat.clone()])]), ReadOptions::new())
            .await
            .unwrap();
        assert_eq!(read.events.len(), 1, "one event per seat");
    }
    let recs = commands(&store).await;
    if record {
        assert_eq!(recs.len(), rounds, "one record per won seat");
        for (seat, positions) in &recs {
            let read = store
                .read(&Query::from_items([QueryItem::tags([seat.clone()])]), ReadOptions::new())
                .await
                .unwrap();
            let got: Vec<i64> = read.events.iter().map(|e| e.position).collect();
            assert_eq!(&got, positions, "the record names its events");
        }
    } else {
        assert!(recs.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executor_races_one_winner_recorded() {
    let Some(store) = common::fresh_store().await else { return };
    seat_race(store, true, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executor_races_one_winner_unrecorded() {
    let Some(store) = common::fresh_store().await else { return };
    seat_race(store, false, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executor_races_under_repeatable_read_default() {
    let Some(store) = common::repeatable_read_store().await else { return };
    seat_race(store.clone(), true, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executor_races_under_repeatable_read_default_unrecorded() {
    let Some(store) = common::repeatable_read_store().await else { return };
    seat_race(store.clone(), false, 20).await;
}

/// A command whose event id is already stored (a client retry of the same command after its
/// first run committed): what is recorded, and what does the executor answer?
#[tokio::test]
async fn executor_replay_and_partial_duplicate() {
    let Some(store) = common::fresh_store().await else { return };
    let seat = format!("seat:{}", Uuid::now_v7());
    let id = Uuid::now_v7();
    // The event is stored outside the executor (another path) under the seat's tag.
    store
        .append_if(
            &[NewEvent::new("Reserved", b"{}".to_vec()).with_id(id).with_tags([seat.clone()])],
            None,
        )
        .await
        .unwrap();
    // A stored event id under another tag: the condition passes, the insert meets the id.
    let other = format!("seat:{}", Uuid::now_v7());
    let cmd = serde_json::json!({"seat": other, "id": id.to_string()});
    let executor = CommandExecutor::new(store.clone());
    let out = executor.execute(&Reserve, &cmd).await;
    let recs = commands(&store).await;
    // Report what happened; a replay must not record a command whose events it did not write.
    eprintln!("replay of a foreign stored id: {out:?}; records: {recs:?}");
    assert!(recs.is_empty() || out.is_ok());
}

/// An empty decision: recorded with no positions, without a condition check.
#[tokio::test]
async fn executor_empty_decision_is_recorded_without_events() {
    let Some(store) = common::fresh_store().await else { return };
    let seat = format!("seat:{}", Uuid::now_v7());
    let cmd = serde_json::json!({"seat": seat, "id": Uuid::now_v7().to_string(), "empty": true});
    let out = CommandExecutor::new(store.clone()).execute(&Reserve, &cmd).await.unwrap();
    assert!(out.positions.is_empty());
    let recs = commands(&store).await;
    assert_eq!(recs.len(), 1);
    assert!(recs[0].1.is_empty());
    let out = CommandExecutor::new(store.clone())
        .record_commands(false)
        .execute(&Reserve, &cmd)
        .await
        .unwrap();
    assert!(out.positions.is_empty());
    assert_eq!(commands(&store).await.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Area 3: cancellation.

/// Sessions of this schema's pool left idle inside a transaction.
async fn idle_in_tx(store: &PgEventStore) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&common::url()).await.unwrap();
    let _ = store;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid() \
         AND now() - state_change > interval '200 milliseconds'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

use sqlx::Connection;

/// Cancels `op` after `k` polls' worth of time, many times, on a one-connection pool, then
/// checks the pool's connection is not left inside a transaction: a later append through it
/// must be visible to another session.
async fn cancel_loop<F, Fut>(store: PgEventStore, op: F) -> (usize, i64)
where
    F: Fn(PgEventStore, u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut leaked = 0;
    for i in 0..400u32 {
        let budget = Duration::from_micros(u64::from(i % 40) * 25);
        let _ = tokio::time::timeout(budget, op(store.clone(), i)).await;
        // Is the pooled connection usable and outside any transaction?
        // SAVEPOINT fails outside a transaction block (25P01).
        let in_tx = sqlx::raw_sql("SAVEPOINT probe").execute(store.pool()).await.is_ok();
        if in_tx && leaked == 0 {
            // The consequence: an autocommit command through the leaked connection reports
            // success, yet another session never sees its event (it sits in the open
            // transaction, holding its boundary locks).
            let seat = format!("seat:{}", Uuid::now_v7());
            let cmd = serde_json::json!({"seat": seat, "id": Uuid::now_v7().to_string()});
            let out = CommandExecutor::new(store.clone()).execute(&Reserve, &cmd).await;
            let mut other = sqlx::PgConnection::connect(&common::url()).await.unwrap();
            let c = store.config();
            let sql = format!(
                "SELECT count(*) FROM \"{}\".\"{}_tags\" WHERE tag = $1",
                c.schema.as_str(),
                c.tables.events.as_str()
            );
            let visible: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(&seat)
                .fetch_one(&mut other)
                .await
                .unwrap();
            eprintln!(
                "leaked transaction: command {:?}, its event visible to others: {visible}",
                out.map(|o| o.positions)
            );
        }
        if in_tx {
            leaked += 1;
            // Clean up so the loop goes on.
            let _ = sqlx::raw_sql("ROLLBACK").execute(store.pool()).await;
        }
    }
    (leaked, idle_in_tx(&store).await)
}

async fn one_conn_store(config: StoreConfig) -> Option<PgEventStore> {
    let _migrated = common::store_with(config.clone()).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&common::url())
        .await
        .unwrap();
    Some(PgEventStore::new(pool, config))
}

#[tokio::test]
async fn cancelled_limited_appends_leave_no_transaction_open() {
    let config = StoreConfig::default()
        .schema(&common::unique_schema())
        .unwrap()
        .append_timeout(Duration::from_secs(5));
    let Some(store) = one_conn_store(config).await else { return };
    let (leaked, idle) = cancel_loop(store, |s, _| async move {
        let _ = s.append_if(&[ev("Tick", &["t".into()])], None).await;
    })
    .await;
    assert_eq!(
        (leaked, idle),
        (0, 0),
        "a cancelled append left its pooled connection in a transaction"
    );
}

#[tokio::test]
async fn cancelled_commits_leave_no_transaction_open() {
    let config = StoreConfig::default().schema(&common::unique_schema()).unwrap();
    let Some(store) = one_conn_store(config).await else { return };
    let (leaked, idle) = cancel_loop(store, |s, _| async move {
        let Ok(mut tx) = s.begin().await else { return };
        let _ = s.append_if_in(&mut tx, &[ev("Tick", &["t".into()])], None).await;
        let _ = s.commit(tx).await;
    })
    .await;
    assert_eq!(
        (leaked, idle),
        (0, 0),
        "a cancelled commit left its pooled connection in a transaction"
    );
}

#[tokio::test]
async fn cancelled_recorded_commands_leave_no_transaction_open() {
    let Some(rr) = common::repeatable_read_store().await else { return };
    // A one-connection pool whose sessions default to REPEATABLE READ: the executor's
    // statement runs again in a READ COMMITTED transaction of its own (append_read_committed).
    use sqlx::postgres::PgConnectOptions;
    let options: PgConnectOptions = common::url().parse().unwrap();
    let options = options.options([("default_transaction_isolation", "repeatable read")]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let store = PgEventStore::new(pool, rr.config().clone());
    let (leaked, idle) = cancel_loop(store, |s, i| async move {
        let cmd = serde_json::json!({"seat": format!("seat:{i}:{}", Uuid::now_v7()), "id": Uuid::now_v7().to_string()});
        let _ = CommandExecutor::new(s).execute(&Reserve, &cmd).await;
    })
    .await;
    assert_eq!(
        (leaked, idle),
        (0, 0),
        "a cancelled command left its pooled connection in a transaction"
    );
}
