//! PostgreSQL-specific behaviour beyond the conformance suite.

mod common;

use pupsourcing_core::{Error, EventStore, ExpectedVersion, StoreConfig, StreamId, VersionRange};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_testkit::{event, new_stream};

#[tokio::test]
async fn closed_pool_is_a_typed_error() {
    let Some(store) = common::fresh_store().await else { return };
    store.pool().close().await;
    let err = store.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap_err();
    assert!(matches!(err, Error::PoolClosed), "{err:?}");
    assert!(matches!(store.read_all(1, 10).await, Err(Error::PoolClosed)));
}

#[tokio::test]
async fn custom_table_names_and_repeated_migrations() {
    let config = StoreConfig::default()
        .schema(&common::unique_schema())
        .and_then(|c| c.events_table("ledger"))
        .and_then(|c| c.aggregate_heads_table("ledger_heads"))
        .unwrap();
    let Some(store) = common::store_with(config.clone()).await else { return };
    store.migrate().await.expect("migrating twice is harmless");
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    let table = format!("{}.ledger", config.schema);
    let sql = format!("SELECT count(*) FROM {table}");
    let count: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn two_stores_in_one_database_do_not_mix() {
    let Some(a) = common::fresh_store().await else { return };
    let Some(b) = common::fresh_store().await else { return };
    a.append(&new_stream(), ExpectedVersion::Any, &[event("A")]).await.unwrap();
    assert_eq!(b.read_all(1, 10).await.unwrap().len(), 0);
    assert_eq!(a.read_all(1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_conflict_leaves_the_callers_transaction_usable() {
    let Some(store) = common::fresh_store().await else { return };
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::Any, &[event("A")]).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let err = store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event("B")]).await;
    assert!(matches!(err, Err(Error::Concurrency { actual: 1, .. })));
    // The function reports conflicts without raising, so the transaction goes on.
    store.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &[event("B")]).await.unwrap();
    store.commit(tx).await.unwrap();
    assert_eq!(store.read_stream(&stream, VersionRange::all()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn no_session_lock_outlives_an_append() {
    use sqlx::Connection;
    let Some(store) = common::fresh_store().await else { return };
    let mut conn = store.pool().acquire().await.unwrap();
    for n in [1, 3, 1, 5] {
        let batch: Vec<_> = (0..n).map(|_| event("E")).collect();
        let mut tx = conn.begin().await.unwrap();
        store.append_in(&mut tx, &new_stream(), ExpectedVersion::Any, &batch).await.unwrap();
        tx.commit().await.unwrap();
    }
    // Between transactions this session holds no advisory lock: the allocation lock is
    // session-level and must have been released by every append.
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(held, 0);
}

mod dcb {
    use super::common;
    use pupsourcing_core::dcb::{
        AppendCondition, CommandRecord, DcbStore, Query, QueryItem, ReadOptions,
    };
    use pupsourcing_core::{Error, EventStore, NewEvent};

    fn tagged(t: &str) -> NewEvent {
        NewEvent::new("Tagged", b"{}".to_vec()).with_tags([t])
    }

    /// Above READ COMMITTED a transaction keeps the snapshot it took before waiting for the
    /// boundary locks, so a condition check or a read against the head could miss an append
    /// that committed meanwhile: both are refused.
    #[tokio::test]
    async fn conditions_and_reads_refuse_isolation_above_read_committed() {
        let Some(store) = common::fresh_store().await else { return };
        let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["x"])]));
        for level in ["REPEATABLE READ", "SERIALIZABLE"] {
            let mut tx = store.begin().await.unwrap();
            let set = format!("SET TRANSACTION ISOLATION LEVEL {level}");
            sqlx::query(sqlx::AssertSqlSafe(set)).execute(&mut *tx).await.unwrap();
            let err = store.append_if_in(&mut tx, &[tagged("x")], Some(&cond)).await.unwrap_err();
            assert!(matches!(err, Error::Unsupported { .. }), "{level}: {err:?}");
            let err = store.read_in(&mut tx, &cond.fail_if_events_match, ReadOptions::new()).await;
            assert!(matches!(err, Err(Error::Unsupported { .. })), "{level}: {err:?}");
            let err = store.read_all_in(&mut tx, 1, 10).await;
            assert!(matches!(err, Err(Error::Unsupported { .. })), "{level}: {err:?}");
            // Unconditional appends are fine at any isolation level.
            store.append_if_in(&mut tx, &[tagged("x")], None).await.unwrap();
        }
        // The store's own reads and conditional appends are unaffected.
        store.append_if(&[tagged("y")], Some(&cond)).await.unwrap();
        store.read(&Query::all(), ReadOptions::new()).await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_condition_leaves_the_transaction_usable_and_commands_are_recorded() {
        let Some(store) = common::fresh_store().await else { return };
        store.append_if(&[tagged("x")], None).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["x"])]));
        assert!(matches!(
            store.append_if_in(&mut tx, &[tagged("y")], Some(&cond)).await,
            Err(Error::ConditionFailed { .. })
        ));
        let written = store.append_if_in(&mut tx, &[tagged("y")], None).await.unwrap();
        let record = CommandRecord {
            command_type: "Test".into(),
            data: serde_json::json!({ "k": 1 }),
            metadata: None,
            positions: written.positions.clone(),
        };
        store.record_command_in(&mut tx, &record).await.unwrap();
        store.commit(tx).await.unwrap();
        let sql = format!(
            "SELECT positions FROM {}.commands WHERE command_type = 'Test'",
            store.config().schema
        );
        let stored: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap();
        assert_eq!(stored, written.positions);
    }

    #[tokio::test]
    async fn a_huge_batch_of_distinct_tags_falls_back_to_one_lock() {
        let Some(store) = common::fresh_store().await else { return };
        let batch: Vec<_> = (0..1000).map(|i| tagged(&format!("t{i}"))).collect();
        let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t0"])]));
        let written = store.append_if(&batch, Some(&cond)).await.unwrap();
        assert_eq!(written.positions.len(), 1000);
        let read = store
            .read(&Query::from_items([QueryItem::tags(["t999"])]), ReadOptions::new())
            .await
            .unwrap();
        assert_eq!(read.events.len(), 1);
        assert_eq!(read.head, 1000);
    }
}

#[tokio::test]
async fn an_append_past_its_time_limit_times_out_and_writes_nothing() {
    let config = StoreConfig::default()
        .schema(&common::unique_schema())
        .unwrap()
        .append_timeout(std::time::Duration::from_millis(200));
    let Some(store) = common::store_with(config).await else { return };
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::Any, &[event("A")]).await.unwrap();
    // Hold the stream's head row in another transaction, so the next append has to wait.
    let mut blocker = store.begin().await.unwrap();
    store.append_in(&mut blocker, &stream, ExpectedVersion::Any, &[event("B")]).await.unwrap();
    let err = store.append(&stream, ExpectedVersion::Any, &[event("C")]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    store.commit(blocker).await.unwrap();
    let types: Vec<_> = store
        .read_stream(&stream, VersionRange::all())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["A", "B"]);
}

/// A marker left by a transaction that has ended does not hold readers back. (A committed
/// writer can be descheduled after its commit became visible and before it released its
/// advisory locks.) Here a session-level lock on a marker key stands in for it: its holder has
/// no transaction, like a writer past its commit.
#[tokio::test]
async fn a_marker_without_a_transaction_does_not_cap_the_head() {
    let Some(store) = common::fresh_store().await else { return };
    let stream = new_stream();
    store.append(&stream, ExpectedVersion::Any, &[event("A")]).await.unwrap();
    // Learn this store's marker key for sequence value 1 from a real append's marker.
    let mut tx = store.begin().await.unwrap();
    store.append_in(&mut tx, &stream, ExpectedVersion::Any, &[event("B")]).await.unwrap();
    let key: i64 = sqlx::query_scalar(
        "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks
          WHERE locktype = 'advisory' AND objsubid = 1 AND pid = pg_backend_pid()",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    store.commit(tx).await.unwrap();
    let mut holder = store.pool().acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock_shared($1)")
        .bind(key)
        .execute(&mut *holder)
        .await
        .unwrap();
    for _ in 0..3 {
        store.append(&stream, ExpectedVersion::Any, &[event("C")]).await.unwrap();
    }
    let read = store.read_all(1, 100).await.unwrap();
    assert_eq!(read.len(), 5, "the head is not capped by the idle session's marker");
    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *holder).await.unwrap();
}

/// A stream's version cannot pass i64::MAX (see the testkit).
#[tokio::test]
async fn versions_at_the_largest_integer() {
    let Some(store) = common::fresh_store().await else { return };
    let set_version = |store: PgEventStore, stream: StreamId, version: i64| async move {
        let sql = format!(
            "UPDATE {}.aggregate_heads SET aggregate_version = $1 WHERE aggregate_id = $2",
            store.config().schema
        );
        let update = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(version).bind(stream.aggregate_id);
        update.execute(store.pool()).await.unwrap();
    };
    pupsourcing_testkit::limits::versions_stop_at_the_largest_integer(store, set_version).await;
}
