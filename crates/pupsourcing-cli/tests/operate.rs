//! `pup status`, `append`, `tail`, `projection` and `dead-letters` end to end, on SQLite,
//! PostgreSQL and MySQL/MariaDB: output, JSON, exit codes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Db, append_some};
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

on_every_backend!(
    append_to_streams_and_with_tags,
    tail_prints_filtered_events_from_a_position,
    tail_follows_new_events,
    status_shows_checkpoints_lag_errors_and_dead_letters,
    status_check_fails_on_lag_and_errors,
    status_shows_workers_and_shard_owners,
    projection_list_and_reset,
    dead_letters_list_replay_and_discard,
);

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn append_to_streams_and_with_tags(db: Db) {
    let db = db.migrated();
    let stream = format!("Order/{}", uuid::Uuid::now_v7());
    db.pup(&[
        "append",
        "--type",
        "OrderPlaced",
        "--stream",
        &stream,
        "--expected-version",
        "no-stream",
    ])
    .assert()
    .success()
    .stdout(contains("at position 1 (version 1)"));
    // A stale expected version: a concurrency error, nothing written.
    db.pup(&[
        "append",
        "--type",
        "OrderPlaced",
        "--stream",
        &stream,
        "--expected-version",
        "no-stream",
    ])
    .assert()
    .code(1)
    .stderr(contains("version"));
    let out = db.ok(&[
        "append",
        "--type",
        "OrderShipped",
        "--stream",
        &stream,
        "--expected-version",
        "1",
        "--json",
    ]);
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["aggregate_version"], 2);
    // Idempotent by event id.
    let id = uuid::Uuid::now_v7().to_string();
    let first: Value = serde_json::from_str(&db.ok(&[
        "append",
        "--type",
        "Tagged",
        "--tag",
        "k:v",
        "--event-id",
        &id,
        "--json",
    ]))
    .unwrap();
    let again: Value = serde_json::from_str(&db.ok(&[
        "append",
        "--type",
        "Tagged",
        "--tag",
        "k:v",
        "--event-id",
        &id,
        "--json",
    ]))
    .unwrap();
    assert_eq!(first["position"], again["position"]);
    assert_eq!(again["replayed"], true);
    // A DCB condition: fails once a matching event exists after --after.
    let query = r#"[{"types": ["Tagged"], "tags": ["k:v"]}]"#;
    db.pup(&["append", "--type", "Tagged", "--tag", "k:v", "--fail-if", query])
        .assert()
        .code(1)
        .stderr(contains("condition"));
    let head = first["position"].as_i64().unwrap().to_string();
    db.ok(&["append", "--type", "Other", "--fail-if", query, "--after", &head]);
    let all = json_lines(&db.ok(&["tail", "--from", "1", "--no-follow", "--json"]));
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[0]["aggregate_type"], "Order");
    assert_eq!(all[1]["aggregate_version"], 2);
}

fn tail_prints_filtered_events_from_a_position(db: Db) {
    let db = db.migrated();
    append_some(&db, 6);
    let count = |args: &[&str]| {
        let mut full = vec!["tail", "--no-follow", "--json"];
        full.extend_from_slice(args);
        json_lines(&db.ok(&full))
    };
    assert_eq!(count(&["--from", "1"]).len(), 6);
    assert_eq!(count(&[]).len(), 0, "from the end by default");
    let from_4 = count(&["--from", "4"]);
    assert_eq!(
        from_4.iter().map(|e| e["position"].as_i64().unwrap()).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(count(&["--from", "1", "--event-type", "OrderPlaced"]).len(), 3);
    assert_eq!(count(&["--from", "1", "--aggregate-type", "Order"]).len(), 3);
    assert_eq!(count(&["--from", "1", "--bounded-context", "school"]).len(), 3);
    let tagged = count(&["--from", "1", "--tag", "course:c1", "--tag", "n:3"]);
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0]["tags"], serde_json::json!(["course:c1", "n:3"]));
    let query = r#"[{"types": ["OrderPlaced"], "tags": ["n:0"]}, {"tags": ["n:5"]}]"#;
    let matched = count(&["--from", "1", "--query", query]);
    assert_eq!(matched.iter().map(|e| e["position"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 6]);
    assert_eq!(count(&["--from", "1", "--limit", "2"]).len(), 2);
    // Readable lines: one per event, with type, stream or tags, and payload.
    let text = db.ok(&["tail", "--from", "1", "--no-follow"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(
        lines[0].contains("OrderPlaced")
            && lines[0].contains("Order/")
            && lines[0].contains(r#"{"total":1}"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("CourseDefined [school]") && lines[1].contains("tags=course:c1,n:1"),
        "{}",
        lines[1]
    );
}

/// `tail` from the end prints an event appended by `pup append` after it started, within
/// seconds; with a poll interval of a minute on PostgreSQL, so only the wake-up notification
/// (sent by the appending process before it exits) can be what woke it.
fn tail_follows_new_events(db: Db) {
    let db = db.migrated();
    append_some(&db, 2);
    let poll = if db.wakes_up() { "60000" } else { "50" };
    let mut command = db.spawnable(&["tail", "--json", "--limit", "1", "--poll-interval-ms", poll]);
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700)); // Let it read the head and listen.
    let appended = Instant::now();
    db.ok(&["append", "--type", "Followed"]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let waited = appended.elapsed();
    let status = child.wait().unwrap();
    assert!(status.success());
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["position"], 3, "only the new event: {line}");
    assert_eq!(event["event_type"], "Followed");
    assert!(waited < Duration::from_secs(5), "printed {waited:?} after the append");
}

fn status_shows_checkpoints_lag_errors_and_dead_letters(db: Db) {
    let db = db.migrated();
    db.pup(&["status"])
        .assert()
        .success()
        .stdout(contains("head: 0"))
        .stdout(contains("(no checkpoints)"));
    append_some(&db, 4);
    db.with_store(async |store| {
        store.checkpoint("orders", 0, 1).await;
        store.checkpoint("courses", 0, 1).await;
        store.fail("courses", "boom: bad payload").await;
        store.dead_letter("orders", 2).await;
    });
    let text = db.ok(&["status"]);
    assert!(text.contains("head: 4"), "{text}");
    let orders = text.lines().find(|l| l.starts_with("orders")).unwrap();
    let cells: Vec<&str> = orders.split_whitespace().collect();
    assert_eq!(&cells[..7], ["orders", "0/1", "0", "4", "4", cells[5], "behind"], "{orders}");
    assert_eq!(cells[7], "1", "one dead letter: {orders}");
    let courses = text.lines().find(|l| l.starts_with("courses")).unwrap();
    assert!(courses.contains("failed") && courses.contains("boom: bad payload"), "{courses}");
    let json: Value = serde_json::from_str(&db.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["head"], 4);
    assert_eq!(json["stall"], Value::Null);
    let projections = json["projections"].as_array().unwrap();
    assert_eq!(projections.len(), 2);
    let orders = projections.iter().find(|p| p["projection"] == "orders").unwrap();
    assert_eq!(orders["lag_events"], 4);
    assert!(orders["lag_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(orders["dead_letters"], 1);
    assert_eq!(orders["state"], "behind");
    let courses = projections.iter().find(|p| p["projection"] == "courses").unwrap();
    assert_eq!(courses["state"], "failed");
    assert_eq!(courses["last_error"], "boom: bad payload");
    assert_eq!(json["generation"]["phase"], "running");
    assert_eq!(json["workers"], serde_json::json!([]));
}

fn status_check_fails_on_lag_and_errors(db: Db) {
    let db = db.migrated();
    append_some(&db, 3);
    db.with_store(async |store| store.checkpoint("orders", 0, 1).await);
    db.pup(&["status", "--check", "--max-lag", "3"]).assert().success().stdout(contains("healthy"));
    db.pup(&["status", "--check", "--max-lag", "2"])
        .assert()
        .code(3)
        .stderr(contains("orders partition 0/1 lags 3 events (max 2)"));
    db.pup(&["status", "--check", "--max-lag-seconds", "3600"]).assert().success();
    let out = db.run(&["status", "--json", "--max-lag", "1"]);
    assert_eq!(out.status.code(), Some(3));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["problems"].as_array().unwrap().len(), 1);
    db.with_store(async |store| store.fail("orders", "stopped").await);
    db.pup(&["status", "--check"]).assert().code(3).stderr(contains("orders partition 0/1 failed"));
}

fn projection_list_and_reset(db: Db) {
    let db = db.migrated();
    append_some(&db, 2);
    db.pup(&["projection", "list"]).assert().success().stdout(contains("(no projections)"));
    db.with_store(async |store| {
        store.checkpoint("orders", 0, 2).await;
        store.checkpoint("orders", 1, 2).await;
        store.checkpoint("courses", 0, 1).await;
        store.dead_letter("orders", 1).await;
    });
    let list: Value = serde_json::from_str(&db.ok(&["projection", "list", "--json"])).unwrap();
    assert_eq!(list[1]["projection"], "orders");
    assert_eq!(list[1]["partitions"], 2);
    assert_eq!(list[1]["dead_letters"], 1);
    // Unknown names, and no confirmation without a terminal: nothing is reset.
    db.pup(&["projection", "reset", "order"])
        .assert()
        .code(1)
        .stderr(contains("no projection named \"order\""))
        .stderr(contains("known projections: courses, orders"));
    db.pup(&["projection", "reset", "orders"])
        .write_stdin("y\n")
        .assert()
        .code(1)
        .stderr(contains("--yes"));
    assert_eq!(
        serde_json::from_str::<Value>(&db.ok(&["projection", "list", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    db.pup(&["projection", "reset", "orders", "--yes"])
        .assert()
        .success()
        .stdout(contains("reset projection \"orders\""));
    let list: Value = serde_json::from_str(&db.ok(&["projection", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["projection"], "courses");
    db.pup(&["dead-letters", "list"]).assert().success().stdout(contains("(no dead letters)"));
}

fn dead_letters_list_replay_and_discard(db: Db) {
    let db = db.migrated();
    append_some(&db, 4);
    db.with_store(async |store| {
        for position in [1, 2, 3] {
            store.dead_letter("orders", position).await;
        }
        store.dead_letter("courses", 4).await;
    });
    let all = json_lines(&db.ok(&["dead-letters", "list", "--json"]));
    assert_eq!(all.len(), 4);
    let orders = json_lines(&db.ok(&["dead-letters", "list", "--projection", "orders", "--json"]));
    assert_eq!(
        orders.iter().map(|l| l["position"].as_i64().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let table = db.ok(&["dead-letters", "list"]);
    assert!(table.contains("handler refused it") && table.contains("courses"), "{table}");
    // Replay writes the letters with their events, and keeps them without --remove.
    let replayed = json_lines(&db.ok(&["dead-letters", "replay", "orders", "--position", "2"]));
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0]["event"]["position"], 2);
    assert_eq!(replayed[0]["event"]["event_type"], "CourseDefined");
    assert_eq!(replayed[0]["error"], "handler refused it");
    assert_eq!(json_lines(&db.ok(&["dead-letters", "list", "--json"])).len(), 4);
    // With --remove, each is removed once written.
    let removed = json_lines(&db.ok(&[
        "dead-letters",
        "replay",
        "orders",
        "--position",
        "1",
        "--position",
        "2",
        "--remove",
    ]));
    assert_eq!(removed.len(), 2);
    let left = json_lines(&db.ok(&["dead-letters", "list", "--json"]));
    // By projection, then position: courses' 4, then orders' 3.
    assert_eq!(left.iter().map(|l| l["position"].as_i64().unwrap()).collect::<Vec<_>>(), [4, 3]);
    // A position without a letter: an error, nothing done.
    db.pup(&["dead-letters", "discard", "orders", "--position", "1", "--position", "3", "--yes"])
        .assert()
        .code(1)
        .stderr(contains("no dead letter at position 1"));
    assert_eq!(json_lines(&db.ok(&["dead-letters", "list", "--json"])).len(), 2);
    db.pup(&["dead-letters", "discard", "orders", "--all"])
        .assert()
        .code(1)
        .stderr(contains("--yes"));
    db.pup(&["dead-letters", "discard", "orders", "--all", "--yes"])
        .assert()
        .success()
        .stdout(contains("discarded 1 dead letter(s)"));
    let left = json_lines(&db.ok(&["dead-letters", "list", "--json"]));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["projection"], "courses");
    db.pup(&["dead-letters", "list", "--projection", "orders"])
        .assert()
        .success()
        .stdout(contains("(no dead letters)").and(contains("orders").not()));
}

/// PostgreSQL: a transaction that appended and stays open holds the head back below its
/// position; `status` shows the stall and who holds it (pid, transaction age, application).
#[test]
fn status_shows_who_stalls_the_head() {
    use pupsourcing_core::{EventStore, ExpectedVersion, StoreConfig};
    let Some(db) = Db::postgres() else { return };
    let db = db.migrated();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = StoreConfig::default().schema(db.schema.as_deref().unwrap()).unwrap();
        let url = format!("{}?application_name=stalling_writer", db.url);
        let store = pupsourcing_postgres::PgEventStore::connect(&url, config).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let stream = pupsourcing_testkit::new_stream();
        let held = pupsourcing_testkit::event("Held");
        store.append_in(&mut tx, &stream, ExpectedVersion::Any, &[held]).await.unwrap();
        db.ok(&["append", "--type", "After"]); // Commits above the open one.
        let json: Value = serde_json::from_str(&db.ok(&["status", "--json"])).unwrap();
        assert_eq!(json["head"], 0, "held back below the open write: {json}");
        let stall = &json["stall"];
        assert_eq!(stall["position"], 0, "the head stops there: {json}");
        assert!(stall["session"].as_i64().unwrap() > 0, "{json}");
        assert!(stall["transaction_age_seconds"].as_f64().unwrap() >= 0.0, "{json}");
        assert_eq!(stall["application_name"], "stalling_writer", "{json}");
        let text = db.ok(&["status"]);
        assert!(
            text.contains("stalled: the head stops at position 0 until a write in flight ends"),
            "{text}"
        );
        assert!(text.contains("application \"stalling_writer\""), "{text}");
        store.commit(tx).await.unwrap();
        let json: Value = serde_json::from_str(&db.ok(&["status", "--json"])).unwrap();
        assert_eq!(json["head"], 2);
        assert_eq!(json["stall"], Value::Null);
        store.close().await;
    });
}

/// MySQL: a transaction that appended and stays open holds the counter, so the head stays
/// below its position (and every other append waits); `status` shows the stall and who holds
/// it (connection id, transaction age, user@host).
#[test]
fn status_shows_who_stalls_the_head_on_mysql() {
    use pupsourcing_core::{ConnectOptions, EventStore, ExpectedVersion, StoreConfig};
    let Some(db) = Db::mysql() else { return };
    let db = db.migrated();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = StoreConfig::default().schema(db.schema.as_deref().unwrap()).unwrap();
        let options = ConnectOptions::new().max_connections(2);
        let store =
            pupsourcing_mysql::MySqlEventStore::connect_with(&db.url, config, options).await;
        let store = store.unwrap();
        let mut tx = store.begin().await.unwrap();
        let stream = pupsourcing_testkit::new_stream();
        let held = pupsourcing_testkit::event("Held");
        store.append_in(&mut tx, &stream, ExpectedVersion::Any, &[held]).await.unwrap();
        let json: Value = serde_json::from_str(&db.ok(&["status", "--json"])).unwrap();
        assert_eq!(json["head"], 0, "held back below the open write: {json}");
        let stall = &json["stall"];
        assert_eq!(stall["position"], 0, "the head stops there: {json}");
        assert!(stall["session"].as_i64().unwrap() > 0, "{json}");
        assert!(stall["transaction_age_seconds"].as_f64().unwrap() >= 0.0, "{json}");
        assert!(stall["application_name"].as_str().unwrap().contains('@'), "user@host: {json}");
        let text = db.ok(&["status"]);
        assert!(
            text.contains("stalled: the head stops at position 0 until a write in flight ends"),
            "{text}"
        );
        store.commit(tx).await.unwrap();
        let json: Value = serde_json::from_str(&db.ok(&["status", "--json"])).unwrap();
        assert_eq!(json["head"], 1);
        assert_eq!(json["stall"], Value::Null);
        store.close().await;
    });
}

/// Orchestrator rows: every worker with its generation, state and heartbeat age, and every
/// shard with its owner, epoch, checkpoint and lag; `--check` covers shards too.
fn status_shows_workers_and_shard_owners(db: Db) {
    let db = db.migrated();
    append_some(&db, 3);
    db.with_store(async |store| store.worker_with_shard("host-a:1", "totals", 2).await);
    let json: Value = serde_json::from_str(&db.ok(&["status", "--json"])).unwrap();
    let workers = json["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{json}");
    assert_eq!(workers[0]["id"], "host-a:1");
    assert_eq!(workers[0]["state"], "running");
    assert_eq!(workers[0]["generation"], 0);
    assert!(workers[0]["heartbeat_age_seconds"].as_f64().unwrap() < 60.0);
    let shards = json["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{json}");
    assert_eq!(shards[0]["owner"], "host-a:1");
    assert_eq!(shards[0]["epoch"], 1);
    // Which shard the events hash into is random: behind with events, else idle.
    let behind = if shards[0]["lag_events"] == 0 { "idle" } else { "behind" };
    assert_eq!(shards[0]["state"], behind);
    assert_eq!(shards[1]["owner"], Value::Null);
    assert_eq!(shards[1]["state"], "unowned");
    let lag: u64 = shards.iter().map(|s| s["lag_events"].as_u64().unwrap()).sum();
    assert_eq!(lag, 3, "the two shards split the 3 events: {json}");
    let text = db.ok(&["status"]);
    assert!(text.contains("orchestrator: generation 0 (running)"), "{text}");
    let worker = text.lines().find(|l| l.starts_with("host-a:1")).unwrap();
    assert!(worker.contains("running"), "{worker}");
    let shard = text.lines().find(|l| l.starts_with("totals") && l.contains("0/2")).unwrap();
    assert!(shard.contains("host-a:1"), "{shard}");
    db.pup(&["status", "--check", "--max-lag", "0"])
        .assert()
        .code(3)
        .stderr(contains("projection totals shard").and(contains("/2 lags")));
}
