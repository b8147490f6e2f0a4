//! Test support shared by the integration tests: stores on new database files, so that pooled
//! connections really race on one file.

#![allow(dead_code)]

pub mod read_model;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pupsourcing_core::StoreConfig;
use pupsourcing_sqlite::SqliteEventStore;

/// A directory for test databases under cargo's per-target scratch directory. Database files
/// older than an hour (left by earlier runs) are removed.
pub fn database_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pupsourcing-sqlite");
    std::fs::create_dir_all(&dir).expect("create the test database directory");
    let stale = SystemTime::now() - Duration::from_secs(3600);
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < stale);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    dir
}

/// The path and URL of a new database file.
pub fn database_url() -> (PathBuf, String) {
    let path = database_dir().join(format!("{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}", path.display());
    (path, url)
}

/// A migrated store with `config` on a new database file.
pub async fn file_store(config: StoreConfig) -> SqliteEventStore {
    let (_, url) = database_url();
    let store = SqliteEventStore::connect(&url, config).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A migrated store with the default configuration on a new database file, for the
/// conformance suites (never `None`: SQLite needs no server).
pub async fn fresh_store() -> Option<SqliteEventStore> {
    Some(file_store(StoreConfig::default()).await)
}
