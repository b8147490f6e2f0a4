//! Projections on PostgreSQL: the testkit's projection-store suite (the partition hash stored
//! by every append path, batches equal to `Scope::matches` and `Partition::contains`,
//! checkpoints by compare-and-set, also raced, dead letters, reset, pending), and what is
//! particular to PostgreSQL: its further append paths (direct statement, function, group
//! commit, recorded appends, append time limit) storing the hash, gap-free batches stopping
//! below an uncommitted append, stalls naming the session, and the migration.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use pupsourcing_core::dcb::{AppendCondition, CommandRecord, DcbStore, Query, QueryItem};
use pupsourcing_core::projection::{Partition, ProjectionStore, Scope, partition_hash};
use pupsourcing_core::{
    AppendResult, Error, EventStore, ExpectedVersion, Limits, NewEvent, Position, StoreConfig,
    StreamId,
};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_testkit::{event, new_stream};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Postgres};

/// The stored partition hash of every event, by position, read with raw SQL.
async fn stored_hashes(store: PgEventStore) -> HashMap<Position, i64> {
    let sql =
        format!("SELECT global_position, partition_hash FROM {}.events", store.config().schema);
    let rows: Vec<(i64, i64)> =
        sqlx::query_as(AssertSqlSafe(sql)).fetch_all(store.pool()).await.unwrap();
    rows.into_iter().collect()
}

/// A fresh store allowing the largest queries.
async fn ceiling_store() -> Option<PgEventStore> {
    let config = StoreConfig { limits: Limits::CEILING, ..StoreConfig::default() };
    common::store_with(config.schema(&common::unique_schema()).unwrap()).await
}

/// A pooled connection outside any transaction.
async fn plain_connection(store: PgEventStore) -> PoolConnection<Postgres> {
    store.pool().acquire().await.unwrap()
}

pupsourcing_testkit::projection_store_conformance!(
    common::fresh_store,
    ceiling_store,
    stored_hashes,
    plain_connection
);

/// The hash each appended event must have, by position.
#[derive(Default)]
struct Expected(HashMap<Position, i64>);

impl Expected {
    fn add(&mut self, result: &AppendResult, stream: Option<&StreamId>, events: &[NewEvent]) {
        for (position, e) in result.positions.iter().zip(events) {
            self.0.insert(*position, i64::from(partition_hash(stream, e)));
        }
    }

    /// Every expected hash is the stored one.
    async fn check(&self, store: &PgEventStore) {
        let stored = stored_hashes(store.clone()).await;
        for (position, hash) in &self.0 {
            assert_eq!(stored.get(position), Some(hash), "stored hash at {position}");
        }
    }
}

/// How many transactions wrote the events with these positions.
async fn writing_transactions(store: &PgEventStore, positions: &[i64]) -> i64 {
    let sql = format!(
        "SELECT count(DISTINCT xmin::text) FROM {}.events WHERE global_position = ANY($1)",
        store.config().schema
    );
    sqlx::query_scalar(AssertSqlSafe(sql)).bind(positions).fetch_one(store.pool()).await.unwrap()
}

/// The append paths the suite does not reach store the partition hash too: a keyed single
/// event on the direct statement, a keyed batch in the caller's transaction, single and batch
/// DCB appends with and without conditions, both recorded appends (`append/recorded.sql`, a
/// batch; `append/direct_recorded.sql`, one event), group commit, and the function run in an
/// explicit transaction under an append time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_append_paths_store_the_partition_hash() {
    let Some(store) = common::fresh_store().await else { return };
    let mut appended = Expected::default();
    let order = new_stream();
    let first = [event("Placed")];
    let r = store.append(&order, ExpectedVersion::NoStream, &first).await.unwrap();
    appended.add(&r, Some(&order), &first);
    let keyed = [event("Renamed").with_partition_key("customer-7")];
    let r = store.append(&order, ExpectedVersion::Exact(1), &keyed).await.unwrap();
    appended.add(&r, Some(&order), &keyed);
    let mut tx = store.begin().await.unwrap();
    let two = [event("InTx"), event("InTx").with_partition_key("k")];
    let r = store.append_in(&mut tx, &order, ExpectedVersion::Exact(2), &two).await.unwrap();
    store.commit(tx).await.unwrap();
    appended.add(&r, Some(&order), &two);

    let dcb = [event("Dcb").with_tags(["t:1"])];
    let r = store.append_if(&dcb, None).await.unwrap();
    appended.add(&r, None, &dcb);
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:3"])]));
    let dcb = [event("Dcb").with_tags(["t:3"]).with_partition_key("student-9")];
    let r = store.append_if(&dcb, Some(&cond)).await.unwrap();
    appended.add(&r, None, &dcb);
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:4"])]));
    let dcb = [event("Dcb").with_tags(["t:4"]), event("Dcb").with_tags(["t:4"])];
    let r = store.append_if(&dcb, Some(&cond)).await.unwrap();
    appended.add(&r, None, &dcb);

    let record = CommandRecord {
        command_type: "Enroll".into(),
        data: serde_json::json!({ "student": 1 }),
        metadata: None,
        positions: Vec::new(),
    };
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:5"])]));
    let dcb = [event("Enrolled").with_tags(["t:5"]), event("Enrolled").with_partition_key("s-1")];
    let r = store.append_if_and_record(&dcb, Some(&cond), &record).await.unwrap();
    appended.add(&r, None, &dcb);
    let cond = AppendCondition::none_match(Query::from_items([QueryItem::tags(["t:6"])]));
    let dcb = [event("Enrolled").with_tags(["t:6"]).with_partition_key("s-2")];
    let r = store.append_if_and_record(&dcb, Some(&cond), &record).await.unwrap();
    appended.add(&r, None, &dcb);
    appended.check(&store).await;

    // Group commit: many queued single-event appends from many tasks (streams, NoStream and
    // Exact, DCB with and without conditions, with command records, keys), written in few
    // transactions.
    let mut work = Vec::new();
    let mut group: Vec<(Option<StreamId>, NewEvent)> = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let stream = new_stream();
        let e = match i % 3 {
            0 => event("Grouped"),
            1 => event("Grouped").with_tags([format!("g:{i}")]),
            _ => event("Grouped").with_partition_key(format!("key-{i}")),
        };
        if i % 2 == 0 {
            group.push((Some(stream.clone()), e.clone()));
            work.push(tokio::spawn(async move {
                store.append(&stream, ExpectedVersion::NoStream, &[e]).await
            }));
        } else {
            group.push((None, e.clone()));
            let cond =
                AppendCondition::none_match(Query::from_items([QueryItem::tags([format!(
                    "g:{i}"
                )])]));
            let (cond, record) = ((i % 4 == 1).then_some(cond), record.clone());
            work.push(tokio::spawn(async move {
                if i % 8 == 5 {
                    store.append_if_and_record(&[e], cond.as_ref(), &record).await
                } else {
                    store.append_if(&[e], cond.as_ref()).await
                }
            }));
        }
    }
    let futures: Vec<_> = work.into_iter().map(|task| async move { task.await.unwrap() }).collect();
    let results: Vec<AppendResult> =
        common::queued(&store, futures).await.into_iter().map(Result::unwrap).collect();
    let positions: Vec<i64> = results.iter().map(|r| r.positions[0]).collect();
    assert!(
        writing_transactions(&store, &positions).await < positions.len() as i64,
        "the queued appends were written in groups"
    );
    for (result, (stream, e)) in results.iter().zip(&group) {
        appended.add(result, stream.as_ref(), std::slice::from_ref(e));
    }
    appended.check(&store).await;

    // Appends with an append time limit run the function in an explicit transaction.
    let config = store.config().clone();
    let limited =
        PgEventStore::new(store.pool().clone(), config.append_timeout(Duration::from_secs(30)));
    let limited_stream = new_stream();
    let one = [event("Limited")];
    let r = limited.append(&limited_stream, ExpectedVersion::NoStream, &one).await.unwrap();
    appended.add(&r, Some(&limited_stream), &one);
    appended.check(&store).await;
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i64 {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await.unwrap();
    i64::from(pid)
}

#[tokio::test]
async fn batches_stop_below_an_uncommitted_append_and_stall_names_its_session() {
    let Some(store) = common::fresh_store().await else { return };
    assert_eq!(store.stall().await.unwrap(), None, "an empty log is not stalled");
    let before = new_stream();
    let first = store.append(&before, ExpectedVersion::NoStream, &[event("A")]).await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None, "nothing in flight");

    let mut tx = store.begin().await.unwrap();
    let pid = backend_pid(&mut tx).await;
    let (stream, held) = (new_stream(), [event("Held")]);
    let held = store.append_in(&mut tx, &stream, ExpectedVersion::Any, &held).await.unwrap();
    let (stream, later) = (new_stream(), [event("Later")]);
    let later = store.append(&stream, ExpectedVersion::Any, &later).await.unwrap();
    assert!(later.positions[0] > held.positions[0]);

    for partition in
        [Partition::all(), Partition::new(0, 2).unwrap(), Partition::new(1, 2).unwrap()]
    {
        let batch = store.read_batch(&Scope::all(), partition, 0, 100).await.unwrap();
        assert!(batch.head < held.positions[0], "the head stops below the uncommitted append");
        assert!(batch.events.iter().all(|e| e.position < held.positions[0]));
    }
    let batch = store.read_batch(&Scope::all(), Partition::all(), 0, 100).await.unwrap();
    assert_eq!(batch.events.iter().map(|e| e.position).collect::<Vec<_>>(), first.positions);
    let pending = store.pending(&Scope::all(), Partition::all(), 0).await.unwrap();
    assert_eq!(pending.events, 1, "pending stops at the head too");

    let stall = store.stall().await.unwrap().expect("the open append holds the head back");
    assert_eq!(stall.session, Some(pid));
    assert_eq!(stall.position, batch.head);
    assert!(stall.transaction_age.is_some());
    assert_eq!(stall.application_name, None, "sqlx sets no application_name");

    store.commit(tx).await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None);
    let batch = store.read_batch(&Scope::all(), Partition::all(), 0, 100).await.unwrap();
    let positions: Vec<Position> = batch.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![first.positions[0], held.positions[0], later.positions[0]]);
    assert_eq!(batch.head, later.positions[0]);
}

#[tokio::test]
async fn stall_reports_the_application_name() {
    use sqlx::ConnectOptions;
    use sqlx::postgres::PgConnectOptions;
    let Some(store) = common::fresh_store().await else { return };
    let options: PgConnectOptions = common::url().parse().unwrap();
    let mut conn = options.application_name("slow-writer").connect().await.unwrap();
    let writer = PgEventStore::new(store.pool().clone(), store.config().clone());
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    writer.append_in(&mut tx, &new_stream(), ExpectedVersion::Any, &[event("Held")]).await.unwrap();
    store.append(&new_stream(), ExpectedVersion::Any, &[event("Later")]).await.unwrap();
    let stall = store.stall().await.unwrap().expect("stalled");
    assert_eq!(stall.application_name.as_deref(), Some("slow-writer"));
    tx.rollback().await.unwrap();
    assert_eq!(store.stall().await.unwrap(), None);
}

#[tokio::test]
async fn migrating_an_older_events_table_adds_the_column() {
    let Some(store) = common::fresh_store().await else { return };
    let schema = store.config().schema.clone();
    let old = [event("Old")];
    let old = store.append(&new_stream(), ExpectedVersion::Any, &old).await.unwrap().positions;
    // The table as it was before partition hashes, then the migration again.
    let drop = format!(
        "ALTER TABLE {schema}.events DROP COLUMN partition_hash; \
         DROP TABLE {schema}.projection_checkpoints, {schema}.projection_dead_letters"
    );
    sqlx::raw_sql(AssertSqlSafe(drop)).execute(store.pool()).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let stream = new_stream();
    let new = [event("New")];
    let at = store.append(&stream, ExpectedVersion::Any, &new).await.unwrap().positions;
    let stored = stored_hashes(store.clone()).await;
    assert_eq!(stored[&old[0]], 0, "events older than the column hash to 0");
    assert_eq!(stored[&at[0]], i64::from(partition_hash(Some(&stream), &new[0])));
    store.checkpoint("p", Partition::all()).await.unwrap();
    // No default is left: a writer that does not know the column fails.
    let insert = format!(
        "INSERT INTO {schema}.events (global_position, event_id, event_type, payload) \
         VALUES (999999, gen_random_uuid(), 'X', '')"
    );
    assert!(sqlx::raw_sql(AssertSqlSafe(insert)).execute(store.pool()).await.is_err());
}

#[tokio::test]
async fn the_migration_names_the_configured_projection_tables() {
    let config = StoreConfig::default()
        .schema("shop")
        .and_then(|c| c.events_table("ledger"))
        .and_then(|c| c.checkpoints_table("progress"))
        .unwrap();
    let sql = pupsourcing_postgres::migration_sql(&config);
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "shop"."progress""#));
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "shop"."ledger_dead_letters""#));
    assert!(sql.contains("partition_hash    BIGINT NOT NULL,"));
}

/// A damaged checkpoint row (a partition key not below its count, written by something other
/// than the store) reads as the corrupt-row database error that SQLite and MySQL give, naming
/// the table, never as a validation error of the caller's input.
#[tokio::test]
async fn a_damaged_checkpoint_row_reads_as_a_corrupt_row() {
    let Some(store) = common::fresh_store().await else { return };
    let table = store.config().tables.checkpoints.as_str().to_string();
    let damage = format!(
        "INSERT INTO {}.{table} (projection_name, partition_key, partition_count) \
         VALUES ('damaged', 5, 3)",
        store.config().schema
    );
    sqlx::query(AssertSqlSafe(damage)).execute(store.pool()).await.unwrap();
    let err = store.checkpoints().await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("unreadable partition_key in table {table}")), "{text}");
}
