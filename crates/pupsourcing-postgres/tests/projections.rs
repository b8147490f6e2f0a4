//! The projection suite on PostgreSQL, each test in a new schema with a read-model table, and
//! the crash test with a real child process killed by SIGKILL.

mod common;

use common::read_model::{fresh, store_with_model};
use pupsourcing_postgres::PgEventStore;

pupsourcing_testkit::projection_conformance!(fresh);

pupsourcing_testkit::killed_child_process_test!(
    projections::killed_processor_resumes_exactly_once, run_until_killed;
    common::unique_schema(), store_with_model
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_wake_an_idle_processor() {
    let Some((store, model)) = fresh().await else { return };
    let wake = store.wakeups().await.unwrap();
    pupsourcing_testkit::projections::wake_ups_end_the_idle_wait(store, model, wake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_writer_holds_the_projection_back() {
    let Some((store, model)) = fresh().await else { return };
    pupsourcing_testkit::projections::an_open_writer_holds_the_projection_back(store, model).await;
}

/// The listener's connection is killed: processors are woken once, the listener listens again
/// on a new connection, and the next append wakes them as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wake_ups_survive_a_lost_listener_connection() {
    let Some((store, model)) = fresh().await else { return };
    let mut wake = store.wakeups().await.unwrap();
    let kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'";
    let channel = store.notification_channel().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await; // LISTEN sent
    let killed: Vec<(bool,)> =
        sqlx::query_as(kill).bind(&channel).fetch_all(store.pool()).await.unwrap();
    assert_eq!(killed.len(), 1, "one listener connection on {channel}");
    tokio::time::timeout(std::time::Duration::from_secs(5), wake.changed())
        .await
        .expect("the lost connection wakes the receiver")
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await; // listening again
    pupsourcing_testkit::projections::wake_ups_end_the_idle_wait(store, model, wake).await;
}

/// The processor's sessions are terminated again and again while it works: it resumes from
/// its checkpoint each time, applying every event exactly once, under every poison policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_resume_exactly_once() {
    let Some((store, model)) = fresh().await else { return };
    let schema = store.config().schema.to_string();
    let killer = store.pool().clone();
    let kill = move || {
        let (killer, schema) = (killer.clone(), schema.clone());
        async move {
            // Sessions in a transaction or running a statement on this schema's tables.
            let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                       WHERE pid <> pg_backend_pid() AND datname = current_database() \
                       AND state <> 'idle' AND query LIKE '%' || $1 || '.%'";
            let killed: Vec<(bool,)> =
                sqlx::query_as(sql).bind(schema).fetch_all(&killer).await.unwrap_or_default();
            killed.len()
        }
    };
    pupsourcing_testkit::projections::killed_connections_resume_exactly_once(store, model, kill)
        .await;
}

/// `commit` of a caller's transaction notifies when it appended, and only then (a
/// projection's batch transaction commits through it too, and must not wake everyone).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_transactions_that_appended_notify() {
    use pupsourcing_core::{EventStore, ExpectedVersion};
    use std::time::Duration;
    let Some((store, _)) = fresh().await else { return };
    let mut wake = store.wakeups().await.unwrap();
    wake.borrow_and_update();
    let quiet = store.begin().await.unwrap();
    store.commit(quiet).await.unwrap();
    let woken = tokio::time::timeout(Duration::from_millis(300), wake.changed()).await;
    assert!(woken.is_err(), "a transaction without appends notified");
    let mut tx = store.begin().await.unwrap();
    let stream = pupsourcing_testkit::new_stream();
    let event = pupsourcing_testkit::event("Appended");
    store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event]).await.unwrap();
    store.commit(tx).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), wake.changed())
        .await
        .expect("the appending transaction notified")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_processor_stops_when_its_shard_moves() {
    let Some((store, model)) = fresh().await else { return };
    pupsourcing_testkit::projections::a_fenced_processor_stops_when_its_shard_moves(store, model)
        .await;
}

/// A store closed right after its append (a short-lived process, such as `pup append`) still
/// sends the wake-up: `close` sends the notification its task had not sent yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_closed_right_after_appending_still_notifies() {
    use pupsourcing_core::ConnectOptions;
    use pupsourcing_core::dcb::DcbStore;
    use std::time::Duration;
    let Some((listening, _)) = fresh().await else { return };
    let mut wake = listening.wakeups().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // LISTEN sent
    for round in 0..10 {
        wake.borrow_and_update();
        let options = ConnectOptions::new().max_connections(2);
        let config = listening.config().clone();
        let short = PgEventStore::connect_with(&common::url(), config, options).await.unwrap();
        let event = pupsourcing_testkit::event("ShortLived");
        short.append_if(&[event], None).await.unwrap();
        short.close().await;
        tokio::time::timeout(Duration::from_secs(3), wake.changed())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no wake-up from a store closed at once"))
            .unwrap();
    }
}
