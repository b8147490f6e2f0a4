//! Table and schema names on PostgreSQL: the longest accepted name, reserved words, names
//! differing only in case, and two stores side by side in one schema (see
//! `pupsourcing_testkit::identifiers`).

mod common;

use pupsourcing_core::{Result, StoreConfig};
use pupsourcing_postgres::PgEventStore;
use pupsourcing_testkit::identifiers;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A pool on the test server, or `None` (skip) when it is unreachable.
async fn pool() -> Option<PgPool> {
    match PgPoolOptions::new().max_connections(20).connect(&common::url()).await {
        Ok(pool) => Some(pool),
        Err(err) => pupsourcing_testkit::unreachable("PostgreSQL", err),
    }
}

/// A function building migrated stores in `schema`, whatever schema their config names.
fn maker(
    pool: PgPool,
    schema: String,
) -> impl Fn(StoreConfig) -> std::pin::Pin<Box<dyn Future<Output = Result<PgEventStore>> + Send>> {
    move |config: StoreConfig| {
        let store = PgEventStore::new(pool.clone(), config.schema(&schema).unwrap());
        Box::pin(async move { store.migrate().await.map(|()| store) })
    }
}

macro_rules! in_a_new_schema {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some(pool) = pool().await {
                    identifiers::$name(maker(pool, common::unique_schema())).await;
                }
            }
        )*
    };
}

in_a_new_schema!(
    longest_events_name_works_and_longer_is_refused,
    reserved_words_work_as_table_names,
    names_differing_in_case_are_one_store,
    stores_with_different_events_tables_keep_streams_apart,
);

/// A reserved word works as a schema name too, and the events table of a mixed-case name is the
/// lower-case table PostgreSQL has always resolved it to (so a database migrated before names
/// were quoted is still found).
#[tokio::test]
async fn reserved_word_schema_and_mixed_case_names() {
    let Some(pool) = pool().await else { return };
    let suffix = &common::unique_schema()["pup_test_".len()..];
    let schema = format!("Pup_Test_{suffix}");
    let make = maker(pool.clone(), schema.clone());
    let store = make(StoreConfig::default().events_table("Select").unwrap()).await.unwrap();
    let stream = pupsourcing_testkit::new_stream();
    let event = pupsourcing_testkit::event("Opened");
    use pupsourcing_core::{EventStore, ExpectedVersion};
    store.append(&stream, ExpectedVersion::NoStream, &[event]).await.unwrap();
    // Unquoted, as a hand-written query would name it.
    let unquoted = format!("SELECT count(*) FROM {schema}.\"select\"");
    let count: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(unquoted)).fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1);

    // The reserved word `select` as the schema itself.
    let make = maker(pool.clone(), "select".into());
    let store = make(StoreConfig::default().events_table(&format!("t_{suffix}")).unwrap()).await;
    let store = store.unwrap();
    store
        .append(
            &pupsourcing_testkit::new_stream(),
            ExpectedVersion::NoStream,
            &[pupsourcing_testkit::event("Opened")],
        )
        .await
        .unwrap();
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 1);
    // Only this test uses the schema `select`.
    sqlx::raw_sql("DROP SCHEMA \"select\" CASCADE").execute(&pool).await.unwrap();
}
