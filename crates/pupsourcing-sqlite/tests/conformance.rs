//! The conformance suite, each test on a new database file so that pooled connections really
//! race on one file.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pupsourcing_core::StoreConfig;
use pupsourcing_sqlite::SqliteEventStore;

/// A directory for test databases under cargo's per-target scratch directory. Database files
/// older than an hour (left by earlier runs) are removed.
fn database_dir() -> PathBuf {
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

async fn fresh_store() -> Option<SqliteEventStore> {
    let path = database_dir().join(format!("{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}", path.display());
    let store = SqliteEventStore::connect(&url, StoreConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

pupsourcing_testkit::event_store_conformance!(fresh_store);
