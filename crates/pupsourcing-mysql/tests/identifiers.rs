//! Table and database names on MySQL: the longest accepted name, reserved words, names
//! differing only in case, and two stores side by side in one database (see
//! `pupsourcing_testkit::identifiers`).

mod common;

use std::future::Future;
use std::pin::Pin;

use pupsourcing_core::{ConnectOptions, Result, StoreConfig};
use pupsourcing_mysql::MySqlEventStore;
use pupsourcing_testkit::identifiers;

type Made = Pin<Box<dyn Future<Output = Result<MySqlEventStore>> + Send>>;

/// A function building migrated stores in `database`, whatever schema their config names.
fn maker(database: String) -> impl Fn(StoreConfig) -> Made {
    move |config: StoreConfig| {
        let config = config.schema(&database).unwrap();
        Box::pin(async move {
            let options = ConnectOptions::new().max_connections(common::POOL_SIZE);
            let store = MySqlEventStore::connect_with(&common::url(), config, options).await?;
            store.migrate().await.map(|()| store)
        })
    }
}

macro_rules! in_a_new_database {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Err(err) = common::probe().await {
                    let _: Option<()> = pupsourcing_testkit::unreachable("MySQL", err);
                    return;
                }
                identifiers::$name(maker(common::unique_database())).await;
            }
        )*
    };
}

in_a_new_database!(
    longest_events_name_works_and_longer_is_refused,
    reserved_words_work_as_table_names,
    names_differing_in_case_are_one_store,
    stores_with_different_events_tables_keep_streams_apart,
);

/// A reserved word works as a database name, and the tables land in it.
#[tokio::test]
async fn reserved_word_database() {
    use pupsourcing_core::{EventStore, ExpectedVersion};
    if common::probe().await.is_err() {
        return;
    }
    let suffix = &common::unique_database()["pup_test_".len()..];
    let make = maker("select".into());
    let config = StoreConfig::default().events_table(&format!("t_{suffix}")).unwrap();
    let store = make(config).await.unwrap();
    let stream = pupsourcing_testkit::new_stream();
    store
        .append(&stream, ExpectedVersion::NoStream, &[pupsourcing_testkit::event("A")])
        .await
        .unwrap();
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 1);
    // Only this test uses the database `select`; its tables are unique to the run.
    let drop = format!("DROP TABLE `select`.`t_{suffix}`");
    pupsourcing_mysql::sqlx::raw_sql(pupsourcing_mysql::sqlx::AssertSqlSafe(drop))
        .execute(store.pool())
        .await
        .unwrap();
}
