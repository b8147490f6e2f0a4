//! The DCB conformance suite on a real MySQL / MariaDB server, each test in a database of its
//! own.

mod common;

pupsourcing_testkit::dcb_conformance!(common::fresh_store);

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, Query, QueryItem, ReadOptions,
};
use pupsourcing_core::{Error, NewEvent};
use pupsourcing_mysql::sqlx;

/// The command executor's write: the events and the command's record in one transaction, the
/// record (with the events' positions) only when the events were appended (not when refused,
/// nor on a replay).
#[tokio::test]
async fn a_command_is_recorded_with_its_events_or_not_at_all() {
    let Some(store) = common::fresh_store().await else { return };
    let tagged = || NewEvent::new("Registered", b"{}".to_vec()).with_tags(["user:ada"]);
    let table = format!("`{}`.commands", store.config().schema);
    let query = Query::from_items([QueryItem::tags(["user:ada"])]);
    let record = CommandRecord {
        command_type: "Register".into(),
        data: serde_json::json!({ "user": "ada", "x": f64::MAX }),
        metadata: Some(serde_json::json!({ "by": "test" })),
        positions: vec![],
    };
    let condition = AppendCondition::none_match(query.clone());
    let events = [tagged(), tagged()];
    let written = store.append_if_and_record(&events, Some(&condition), &record).await.unwrap();
    let sql = format!("SELECT positions, data, metadata FROM {table}");
    let (positions, data, metadata): (String, String, Option<String>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap();
    assert_eq!(serde_json::from_str::<Vec<i64>>(&positions).unwrap(), written.positions);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&data).unwrap(), record.data);
    let metadata = metadata.map(|m| serde_json::from_str::<serde_json::Value>(&m).unwrap());
    assert_eq!(metadata, record.metadata);

    let refused = store.append_if_and_record(&[tagged()], Some(&condition), &record).await;
    assert!(matches!(refused, Err(Error::ConditionFailed { .. })), "{refused:?}");
    let count = format!("SELECT COUNT(*) FROM {table}");
    let count = || async {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1, "a refused command is not recorded");
    let replayed = store.append_if_and_record(&events, None, &record).await.unwrap();
    assert!(replayed.replayed && replayed.positions == written.positions);
    assert_eq!(count().await, 1, "a replay is not recorded again");
    assert_eq!(store.read(&query, ReadOptions::new()).await.unwrap().events.len(), 2);
    store.append_if_and_record(&[], Some(&condition), &record).await.unwrap();
    assert_eq!(count().await, 2, "a decision to append nothing is recorded");
}
