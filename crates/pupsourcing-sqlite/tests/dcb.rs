//! DCB on SQLite: the DCB conformance suite on new database files, and behaviour specific to
//! this backend (one log with the streams, caller transactions, the commands table, migrations).

mod common;

use common::{database_url, file_store, fresh_store};
use pupsourcing_core::dcb::{
    AppendCondition, CommandExecutor, CommandHandler, CommandRecord, DcbStore, DecisionModel,
    Handle, Query, QueryItem, ReadOptions, StateProjector, States, tag,
};
use pupsourcing_core::{Error, EventStore, ExpectedVersion, NewEvent, StoreConfig};
use pupsourcing_sqlite::{SqliteEventStore, sqlx};
use pupsourcing_testkit::new_stream;
use sqlx::{Connection, Row};

pupsourcing_testkit::dcb_conformance!(fresh_store);

fn ev(event_type: &str, tags: &[&str]) -> NewEvent {
    NewEvent::new(event_type, b"{}".to_vec()).with_tags(tags.iter().copied())
}

fn by_tags(tags: &[&str]) -> Query {
    Query::from_items([QueryItem::tags(tags.iter().copied())])
}

async fn positions(store: &SqliteEventStore, query: &Query) -> Vec<i64> {
    store.read(query, ReadOptions::new()).await.unwrap().events.iter().map(|e| e.position).collect()
}

async fn count(store: &SqliteEventStore, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(r#"SELECT count(*) FROM "{table}""#)))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Tagged aggregate events appended through the stream path are in the tag index: DCB tag
/// queries (one tag, two tags, tag and type) and conditions find them.
#[tokio::test]
async fn tagged_aggregate_events_are_found_by_tag_queries() {
    let store = file_store(StoreConfig::default()).await;
    let stream = new_stream();
    let opened = ev("Opened", &["account:1", "owner:ada"]);
    let r = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            &[opened.clone(), ev("Credited", &["account:1"])],
        )
        .await
        .unwrap();
    assert_eq!(r.versions, [1, 2]);
    store.append_if(&[ev("Other", &["account:2"])], None).await.unwrap();

    assert_eq!(positions(&store, &by_tags(&["account:1"])).await, r.positions);
    assert_eq!(positions(&store, &by_tags(&["owner:ada", "account:1"])).await, [r.positions[0]]);
    let typed = Query::from_items([QueryItem::types(["Credited"]).with_tags(["account:1"])]);
    assert_eq!(positions(&store, &typed).await, [r.positions[1]]);

    let read = store.read(&by_tags(&["owner:ada"]), ReadOptions::new()).await.unwrap();
    assert_eq!(read.events[0].event_id, opened.event_id);
    assert_eq!(read.events[0].stream.as_ref().map(|(s, v)| (s, *v)), Some((&stream, 1)));
    assert_eq!(read.head, 3);

    let condition = AppendCondition::none_after(by_tags(&["account:1"]), 1);
    let refused = store.append_if(&[ev("X", &[])], Some(&condition)).await;
    assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
    assert_eq!(count(&store, "events_tags").await, 4);
}

/// In a caller's transaction, a refused conditional append leaves the transaction usable and
/// its earlier appends intact; the transaction's own reads see its uncommitted events and head.
#[tokio::test]
async fn conditional_appends_in_a_callers_transaction() {
    let store = file_store(StoreConfig::default()).await;
    store.append_if(&[ev("Claimed", &["user:ada"])], None).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let bob = store
        .append_if_in(
            &mut tx,
            &[ev("Claimed", &["user:bob"])],
            Some(&AppendCondition::none_match(by_tags(&["user:bob"]))),
        )
        .await
        .unwrap();
    assert_eq!((bob.positions.as_slice(), bob.versions.len()), ([2].as_slice(), 0));
    let again = AppendCondition::none_match(by_tags(&["user:ada"]));
    let refused = store.append_if_in(&mut tx, &[ev("Claimed", &["user:ada"])], Some(&again)).await;
    assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
    // The condition sees the transaction's own, uncommitted event.
    let bob_again = AppendCondition::none_match(by_tags(&["user:bob"]));
    let refused =
        store.append_if_in(&mut tx, &[ev("Claimed", &["user:bob"])], Some(&bob_again)).await;
    assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
    let inside = store.read_in(&mut tx, &Query::all(), ReadOptions::new()).await.unwrap();
    assert_eq!((inside.events.len(), inside.head), (2, 2));
    assert_eq!(store.read(&Query::all(), ReadOptions::new()).await.unwrap().head, 1, "uncommitted");
    store.commit(tx).await.unwrap();

    assert_eq!(positions(&store, &Query::all()).await, [1, 2]);
    assert_eq!(count(&store, "events_tags").await, 2);
}

/// A write that fails after the events went in (here: the tag index insert, refused by a
/// trigger) leaves nothing of the DCB append behind, in the store's own transaction and in a
/// caller's.
#[tokio::test]
async fn a_failed_dcb_write_leaves_nothing_behind() {
    let store = file_store(StoreConfig::default()).await;
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON events_tags WHEN NEW.tag = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();

    let err = store.append_if(&[ev("A", &["fine"]), ev("B", &["poison"])], None).await;
    assert!(matches!(err, Err(Error::Database(_))), "{err:?}");
    assert_eq!(store.head().await.unwrap(), 0);

    let mut tx = store.begin().await.unwrap();
    store.append_if_in(&mut tx, &[ev("A", &["fine"])], None).await.unwrap();
    let err = store.append_if_in(&mut tx, &[ev("B", &["poison"])], None).await;
    assert!(matches!(err, Err(Error::Database(_))), "{err:?}");
    store.commit(tx).await.unwrap();
    assert_eq!(positions(&store, &Query::all()).await.len(), 1, "only the good append");
    assert_eq!(count(&store, "events_tags").await, 1);
}

/// A connection outside a transaction gets a write transaction of its own, committed.
#[tokio::test]
async fn append_if_in_outside_a_transaction_commits_on_its_own() {
    let store = file_store(StoreConfig::default()).await;
    let mut conn = store.pool().acquire().await.unwrap();
    let condition = AppendCondition::none_match(by_tags(&["t"]));
    store.append_if_in(&mut conn, &[ev("A", &["t"])], Some(&condition)).await.unwrap();
    assert!(!conn.is_in_transaction());
    let read = store.read_in(&mut conn, &by_tags(&["t"]), ReadOptions::new()).await.unwrap();
    assert!(!conn.is_in_transaction(), "the read's own transaction ended");
    drop(conn);
    assert_eq!((read.events.len(), read.head), (1, 1));

    // A plain deferred transaction works too.
    let mut tx = store.pool().begin().await.unwrap();
    let refused = store.append_if_in(&mut tx, &[ev("A", &["t"])], Some(&condition)).await;
    assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
    store.append_if_in(&mut tx, &[ev("B", &["u"])], None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.head().await.unwrap(), 2);
}

/// Idempotency on the DCB path: a replay reports no versions; a partly stored batch is refused.
#[tokio::test]
async fn dcb_replays_and_partial_duplicates() {
    let store = file_store(StoreConfig::default()).await;
    let (a, b) = (ev("A", &["x"]), ev("B", &[]));
    let first = store.append_if(&[a.clone(), b.clone()], None).await.unwrap();
    let again = store.append_if(&[a.clone(), b], None).await.unwrap();
    assert!(again.replayed && again.versions.is_empty());
    assert_eq!(again.positions, first.positions);
    let partial = store.append_if(&[a, ev("C", &[])], None).await;
    assert!(
        matches!(partial, Err(Error::PartialDuplicate { stored: 1, total: 2, .. })),
        "{partial:?}"
    );
    assert_eq!(store.head().await.unwrap(), 2);
}

/// A command handler that claims a username once.
struct Claim;

impl CommandHandler for Claim {
    type Command = String;
    type Error = &'static str;
    type Handles = Handle<bool>;

    fn command_type(&self, _: &String) -> String {
        "ClaimUsername".into()
    }

    fn model(&self, name: &String, model: &mut DecisionModel) -> Handle<bool> {
        let claimed = QueryItem::types(["UsernameClaimed"]).with_tags([tag("username", name)]);
        model.add(StateProjector::new("taken", Query::from_items([claimed]), false, |_, _| true))
    }

    fn decide(
        &self,
        name: &String,
        taken: &Handle<bool>,
        states: &States,
    ) -> Result<Vec<NewEvent>, &'static str> {
        if *states.get(*taken) {
            return Err("taken");
        }
        Ok(vec![NewEvent::new("UsernameClaimed", vec![]).with_tags([tag("username", name)])])
    }

    fn metadata(&self, _: &String) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "user": "admin" }))
    }
}

/// The command executor runs on SQLite end to end, and records each command with its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn command_executor_records_commands() {
    let store = file_store(StoreConfig::default()).await;
    let executor = CommandExecutor::new(store.clone());
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let executor = executor.clone();
            tokio::spawn(async move { executor.execute(&Claim, &"ada".to_string()).await })
        })
        .collect();
    let mut won = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(outcome) => won.push(outcome),
            Err(pupsourcing_core::dcb::ExecuteError::Rejected("taken")) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(won.len(), 1, "one claim wins");
    assert_eq!(won[0].positions, [1]);

    let rows = sqlx::query("SELECT command_type, data, metadata, positions FROM commands")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "refused commands are not recorded");
    let get = |c: &str| rows[0].get::<Option<String>, _>(c);
    assert_eq!(get("command_type").as_deref(), Some("ClaimUsername"));
    assert_eq!(get("data").as_deref(), Some(r#""ada""#));
    assert_eq!(get("metadata").as_deref(), Some(r#"{"user":"admin"}"#));
    assert_eq!(get("positions").as_deref(), Some("[1]"));

    // Recorded directly, with no metadata and no positions.
    let mut tx = store.begin().await.unwrap();
    let record = CommandRecord {
        command_type: "Noop".into(),
        data: serde_json::json!({ "n": 1 }),
        metadata: None,
        positions: vec![],
    };
    store.record_command_in(&mut tx, &record).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(count(&store, "commands").await, 2);
}

/// An executor told not to record commands appends its events and leaves the commands table
/// empty.
#[tokio::test]
async fn command_records_can_be_turned_off() {
    let store = file_store(StoreConfig::default()).await;
    let executor = CommandExecutor::new(store.clone()).record_commands(false);
    let outcome = executor.execute(&Claim, &"ada".to_string()).await.unwrap();
    assert_eq!(outcome.positions, [1]);
    assert!(matches!(
        executor.execute(&Claim, &"ada".to_string()).await,
        Err(pupsourcing_core::dcb::ExecuteError::Rejected("taken"))
    ));
    assert_eq!(count(&store, "commands").await, 0);
}

/// Custom table names (SQL keywords on purpose) work for the tag index and the commands table.
#[tokio::test]
async fn custom_table_names_work_for_dcb() {
    let config = StoreConfig::default()
        .events_table("order")
        .unwrap()
        .aggregate_heads_table("group")
        .unwrap()
        .commands_table("select")
        .unwrap();
    let store = file_store(config).await;
    let condition = AppendCondition::none_match(Query::from_items([
        QueryItem::types(["A"]).with_tags(["t1", "t2"]),
        QueryItem::types(["B"]),
    ]));
    store.append_if(&[ev("A", &["t1", "t2"])], Some(&condition)).await.unwrap();
    let refused = store.append_if(&[ev("C", &[])], Some(&condition)).await;
    assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
    assert_eq!(positions(&store, &condition.fail_if_events_match).await, [1]);
    assert_eq!(count(&store, "order_tags").await, 2);
    let mut tx = store.begin().await.unwrap();
    let record = CommandRecord {
        command_type: "C".into(),
        data: serde_json::json!(null),
        metadata: None,
        positions: vec![1],
    };
    store.record_command_in(&mut tx, &record).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(count(&store, "select").await, 1);
}

/// Migrating a database whose events were written before the tag index existed fills the index
/// once; later migrations leave it alone.
#[tokio::test]
async fn migrate_backfills_the_tag_index_once() {
    let (_, url) = database_url();
    let store = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    store.append(&new_stream(), ExpectedVersion::Any, &[ev("A", &["t1", "t2"])]).await.unwrap();
    store.append_if(&[ev("B", &["t2"]), ev("C", &[])], None).await.unwrap();
    sqlx::query("DROP TABLE events_tags").execute(store.pool()).await.unwrap();

    store.migrate().await.unwrap();
    assert_eq!(count(&store, "events_tags").await, 3);
    assert_eq!(positions(&store, &by_tags(&["t2"])).await, [1, 2]);
    let typed = Query::from_items([QueryItem::types(["B"]).with_tags(["t2"])]);
    assert_eq!(positions(&store, &typed).await, [2]);

    sqlx::query("DELETE FROM events_tags WHERE global_position = 2")
        .execute(store.pool())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(count(&store, "events_tags").await, 2, "no second backfill");
}

/// Queries of many items (more than SQLite's 500 terms of one compound SELECT) read and check.
#[tokio::test]
async fn queries_of_many_items() {
    let limits = pupsourcing_core::Limits::CEILING;
    let store = file_store(StoreConfig { limits, ..StoreConfig::default() }).await;
    store.append_if(&[ev("A", &["t7"]), ev("B", &["t900"]), ev("C", &[])], None).await.unwrap();
    let items = (0..limits.max_query_items - 1).map(|i| {
        if i % 2 == 0 {
            QueryItem::tags([format!("t{i}")])
        } else {
            QueryItem::types([format!("T{i}")])
        }
    });
    let mut query = Query::from_items(items);
    assert_eq!(positions(&store, &query).await, [2]);
    let limited = store.read(&query, ReadOptions::new().backwards().limit(1)).await.unwrap();
    assert_eq!(limited.events.len(), 1);
    query.items.push(QueryItem::types(["C"]));
    let refused = store
        .append_if(&[ev("D", &[])], Some(&AppendCondition::none_after(query.clone(), 2)))
        .await;
    assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
    store.append_if(&[ev("D", &[])], Some(&AppendCondition::none_after(query, 3))).await.unwrap();
}
