//! The log's limits on SQLite: what validation accepts reads back, what a backend could not
//! store is refused up front. Each store on a new database file.

mod common;

async fn store_with(
    config: pupsourcing_core::StoreConfig,
) -> Option<pupsourcing_sqlite::SqliteEventStore> {
    Some(common::file_store(config).await)
}

pupsourcing_testkit::limits_conformance!(store_with);
