//! Table names: the longest accepted name, reserved words, names differing only in case, and
//! stores with different events tables side by side in one schema (or database file).
//!
//! Each test takes `make`, which builds and migrates a store with the given table names in one
//! place shared by every store the test makes (a PostgreSQL schema, a SQLite file), and returns
//! the migration's result.

use std::future::Future;
use std::time::Duration;

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, Query, QueryItem, ReadOptions,
};
use pupsourcing_core::{
    Error, ExpectedVersion, Identifier, Position, Result, StoreConfig, TableNames, ValidationError,
    VersionRange,
};
use uuid::Uuid;

use crate::fixtures::{event, new_stream};

/// Appends to a stream and as DCB, records a command, and reads everything back.
async fn round_trip<S: DcbStore>(store: &S) {
    let stream = new_stream();
    let appended = store.append(&stream, ExpectedVersion::NoStream, &[event("Opened")]).await;
    assert_eq!(appended.unwrap().versions, [1]);
    let tag = format!("probe:{}", Uuid::now_v7());
    let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
    let condition = AppendCondition::none_match(query.clone());
    let tagged = event("Probed").with_tags([tag.as_str()]);
    let result = store.append_if(&[tagged], Some(&condition)).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let command = CommandRecord {
        command_type: "Probe".into(),
        data: serde_json::json!({ "tag": tag }),
        metadata: None,
        positions: result.positions.clone(),
    };
    store.record_command_in(&mut tx, &command).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(store.read_stream(&stream, VersionRange::all()).await.unwrap().len(), 1);
    let read = store.read(&query, ReadOptions::new()).await.unwrap();
    assert_eq!(read.events.len(), 1);
    assert_eq!(store.read_all(0 as Position, 100).await.unwrap().len(), 2);
}

/// An events table name of the longest accepted length migrates and works; one byte more is
/// refused by the setter, and a longer name assigned to the field directly is refused by
/// `migrate` with a typed error (PostgreSQL would otherwise truncate the derived names to 63
/// bytes, where they collide).
pub async fn longest_events_name_works_and_longer_is_refused<S, F, Fut>(make: F)
where
    S: DcbStore,
    F: Fn(StoreConfig) -> Fut,
    Fut: Future<Output = Result<S>>,
{
    let longest = format!("e{}", "x".repeat(TableNames::MAX_EVENTS_LEN - 1));
    let store = make(StoreConfig::default().events_table(&longest).unwrap()).await.unwrap();
    round_trip(&store).await;

    let too_long = StoreConfig::default().events_table(&format!("{longest}x"));
    assert!(matches!(too_long, Err(ValidationError::TableNames { .. })), "{too_long:?}");
    for len in [Identifier::MAX_LEN, 55, TableNames::MAX_EVENTS_LEN + 1] {
        let mut config = StoreConfig::default();
        config.tables.events = Identifier::new(format!("f{}", "x".repeat(len - 1))).unwrap();
        match make(config).await {
            Err(Error::Validation(ValidationError::TableNames { reason })) => {
                assert!(reason.contains(&TableNames::MAX_EVENTS_LEN.to_string()), "{reason}");
            }
            Err(other) => panic!("{len} bytes: expected a TableNames error, got {other}"),
            Ok(_) => panic!("{len} bytes: migrate accepted a name whose derived names collide"),
        }
    }
}

/// Reserved words work as table names: every name is quoted wherever it is spliced.
pub async fn reserved_words_work_as_table_names<S, F, Fut>(make: F)
where
    S: DcbStore,
    F: Fn(StoreConfig) -> Fut,
    Fut: Future<Output = Result<S>>,
{
    let config = StoreConfig::default()
        .events_table("user")
        .and_then(|c| c.aggregate_heads_table("order"))
        .and_then(|c| c.commands_table("select"))
        .unwrap();
    round_trip(&make(config).await.unwrap()).await;
}

/// Two stores whose events tables differ only in case use one table (the databases fold or
/// ignore ASCII case), so they must also share their DCB locks: a condition checked through
/// one sees the other's in-flight append. First deterministically (one append held open in a
/// transaction while the other runs), then by racing both stores many times: exactly one
/// claim of each username wins.
pub async fn names_differing_in_case_are_one_store<S, F, Fut>(make: F)
where
    S: DcbStore,
    F: Fn(StoreConfig) -> Fut,
    Fut: Future<Output = Result<S>>,
{
    let upper = make(StoreConfig::default().events_table("Claims").unwrap()).await.unwrap();
    let lower = make(StoreConfig::default().events_table("claims").unwrap()).await.unwrap();
    let claim = |name: &str| {
        let tag = format!("username:{name}");
        let query = Query::from_items([QueryItem::tags([tag.as_str()])]);
        (event("UsernameClaimed").with_tags([tag.as_str()]), AppendCondition::none_match(query))
    };

    // Held open: the second claim must wait for the first and then fail.
    let (first, condition) = claim(&Uuid::now_v7().to_string());
    let mut tx = upper.begin().await.unwrap();
    upper.append_if_in(&mut tx, std::slice::from_ref(&first), Some(&condition)).await.unwrap();
    let second = {
        let (lower, condition) = (lower.clone(), condition.clone());
        let second = event("UsernameClaimed").with_tags(first.tags.iter().map(String::as_str));
        tokio::spawn(async move { lower.append_if(&[second], Some(&condition)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    upper.commit(tx).await.unwrap();
    match second.await.unwrap() {
        Err(Error::ConditionFailed { .. }) => {}
        other => panic!("both stores claimed one username: {other:?}"),
    }

    // Raced: four claims through each store per round.
    for _ in 0..20 {
        let name = Uuid::now_v7().to_string();
        let racers = (0..8).map(|i| {
            let store = if i % 2 == 0 { upper.clone() } else { lower.clone() };
            let (claim, condition) = claim(&name);
            (store, vec![claim], Some(condition))
        });
        let wins = crate::dcb::race_on(racers).await;
        assert_eq!(wins, 1, "claims of username {name} through `Claims` and `claims`");
    }
}

/// Two stores with different events tables and default heads tables in one schema keep their
/// streams apart: each gets a heads table of its own, so the same stream id starts at version
/// 1 in both.
pub async fn stores_with_different_events_tables_keep_streams_apart<S, F, Fut>(make: F)
where
    S: DcbStore,
    F: Fn(StoreConfig) -> Fut,
    Fut: Future<Output = Result<S>>,
{
    let orders = make(StoreConfig::default().events_table("orders_log").unwrap()).await.unwrap();
    let billing = make(StoreConfig::default().events_table("billing_log").unwrap()).await.unwrap();
    let stream = new_stream();
    for store in [&orders, &billing] {
        let result = store.append(&stream, ExpectedVersion::NoStream, &[event("Opened")]).await;
        assert_eq!(result.unwrap().versions, [1]);
        assert_eq!(store.read_stream(&stream, VersionRange::all()).await.unwrap().len(), 1);
    }
}
