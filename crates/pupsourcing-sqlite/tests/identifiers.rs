//! Table names on SQLite: the longest accepted name, reserved words, names differing only in
//! case, and two stores side by side in one database file (see
//! `pupsourcing_testkit::identifiers`).

mod common;

use std::future::Future;
use std::pin::Pin;

use pupsourcing_core::{Result, StoreConfig};
use pupsourcing_sqlite::SqliteEventStore;
use pupsourcing_testkit::identifiers;

type Made = Pin<Box<dyn Future<Output = Result<SqliteEventStore>> + Send>>;

/// A function building migrated stores on one new database file.
fn maker() -> impl Fn(StoreConfig) -> Made {
    let (_, url) = common::database_url();
    move |config: StoreConfig| {
        let url = url.clone();
        Box::pin(async move {
            let store = SqliteEventStore::connect(&url, config).await?;
            store.migrate().await.map(|()| store)
        })
    }
}

macro_rules! on_a_new_file {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                identifiers::$name(maker()).await;
            }
        )*
    };
}

on_a_new_file!(
    longest_events_name_works_and_longer_is_refused,
    reserved_words_work_as_table_names,
    names_differing_in_case_are_one_store,
    stores_with_different_events_tables_keep_streams_apart,
);
