//! The log's limits on a real PostgreSQL server: what validation accepts reads back, what a
//! backend could not store is refused up front. Each store in a schema of its own.

mod common;

async fn store_with(
    config: pupsourcing_core::StoreConfig,
) -> Option<pupsourcing_postgres::PgEventStore> {
    let config = config.schema(&common::unique_schema()).unwrap();
    common::store_with(config).await
}

pupsourcing_testkit::limits_conformance!(store_with);
