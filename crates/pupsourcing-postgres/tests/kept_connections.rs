//! The connections a PostgreSQL store keeps for its one-statement calls (connection.rs,
//! `KeptConnections`): DCB reads and appends that run alone use them instead of the pool, whose
//! release costs a ping; a failed or cancelled call closes its connection; a connection the
//! server ended while it sat idle fails no call.

mod common;

use pupsourcing_core::dcb::{
    AppendCondition, CommandRecord, DcbStore, Query, QueryItem, ReadOptions,
};
use pupsourcing_core::{Error, EventStore, ExpectedVersion, NewEvent, StreamId};
use pupsourcing_postgres::PgEventStore;

/// The sessions of the test server whose application name is `name`.
async fn sessions(admin: &sqlx::PgPool, name: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(name)
        .fetch_one(admin)
        .await
        .unwrap()
}

/// A store on a lazy pool whose sessions carry `name`, sharing `schema` with `store`.
fn named_store(store: &PgEventStore, name: &str) -> PgEventStore {
    let options: sqlx::postgres::PgConnectOptions = common::url().parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_lazy_with(options.application_name(name));
    PgEventStore::new(pool, store.config().clone())
}

/// A fresh store holding one event tagged `reader:1`, and a second store on the same schema
/// whose sessions carry a unique name (returned), with the query for that event.
async fn reader_fixture() -> Option<(PgEventStore, String, PgEventStore, Query)> {
    let store = common::fresh_store().await?;
    let name = format!("pup-readers-{}", uuid::Uuid::new_v4().simple());
    let reader = named_store(&store, &name);
    let query = Query::from_items([QueryItem::tags(["reader:1"])]);
    store.append_if(&[NewEvent::new("Seen", "{}").with_tags(["reader:1"])], None).await.unwrap();
    Some((store, name, reader, query))
}

/// `n` reads of `query` on `reader` at once, each checked to find the one event.
async fn concurrent_reads(reader: &PgEventStore, query: &Query, n: usize) {
    let reads = (0..n).map(|_| {
        let (reader, query) = (reader.clone(), query.clone());
        tokio::spawn(async move { reader.read(&query, ReadOptions::new()).await.unwrap() })
    });
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.unwrap().events.len(), 1);
    }
}

/// DCB reads keep their connections (connection.rs, `KeptConnections`): one read after another uses one
/// session of its own and never the pool, whose release would cost a ping; concurrent reads
/// open at most four, and the rest use the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_keep_their_connections_out_of_the_pool() {
    let Some((store, name, reader, query)) = reader_fixture().await else { return };
    for _ in 0..20 {
        assert_eq!(reader.read(&query, ReadOptions::new()).await.unwrap().events.len(), 1);
    }
    assert_eq!(reader.pool().size(), 0, "sequential reads never took a pool connection");
    assert_eq!(sessions(store.pool(), &name).await, 1, "one kept connection served them all");
    concurrent_reads(&reader, &query, 16).await;
    let kept = sessions(store.pool(), &name).await - i64::from(reader.pool().size());
    assert!((1..=4).contains(&kept), "{kept} kept connections");
    reader.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sessions(store.pool(), &name).await, 0, "close closes the kept connections");
}

/// A read cancelled while its statement waits (here on a lock held by the test) leaves an
/// answer unread on its connection: that connection is closed, never kept (sqlx would drain
/// the answer before the next statement, but a connection cut short is not trusted), and the
/// next read opens another and gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_read_does_not_keep_its_connection() {
    let Some((store, name, reader, query_one)) = reader_fixture().await else { return };
    let two = QueryItem::tags(["reader:2"]);
    store.append_if(&[NewEvent::new("Two", "{}").with_tags(["reader:2"])], None).await.unwrap();
    reader.read(&query_one, ReadOptions::new()).await.unwrap();
    let lock = lock_the_events_table(&store).await;
    let waiting = reader.read(&query_one, ReadOptions::new());
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(300), waiting).await;
    assert!(cancelled.is_err(), "the read waited for the lock");
    lock.rollback().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sessions(store.pool(), &name).await, 0, "the cancelled read's session ended");
    let read = reader.read(&Query::from_items([two]), ReadOptions::new()).await.unwrap();
    let types: Vec<&str> = read.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Two"], "the next read got its own answer");
}

/// A kept connection the server ended while it sat idle (a server restart, an
/// `idle_session_timeout`, `pg_terminate_backend`) fails no read: a pool connection would have
/// been pinged and replaced, so a kept one must not turn the server's restart into failed reads
/// (one per kept connection). Here every kept session is ended between two rounds of reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_connection_ended_by_the_server_fails_no_read() {
    let Some((store, name, reader, query)) = reader_fixture().await else { return };
    concurrent_reads(&reader, &query, 16).await;
    assert!(sessions(store.pool(), &name).await >= 1, "the reads kept a connection");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&name)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(ended.iter().all(|e| *e), "{ended:?}");
    for _ in 0..50 {
        if sessions(store.pool(), &name).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sessions(store.pool(), &name).await, 0, "the server ended every session");
    for round in 0..8 {
        let read = reader.read(&query, ReadOptions::new()).await;
        assert_eq!(read.map(|r| r.events.len()).ok(), Some(1), "read {round} after the end");
    }
}

/// A read that opens a kept connection to a server that accepts the socket but never answers
/// (a hung server, a proxy whose backend is gone) gives up within the pool's acquire timeout,
/// as a read on the pool does, even with no query time limit: opening a connection of the
/// store's own must not wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_silent_server_ends_within_the_acquire_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = sqlx::postgres::PgConnectOptions::new().host("127.0.0.1").port(port);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(300))
        .connect_lazy_with(options);
    let store = PgEventStore::new(pool, pupsourcing_core::StoreConfig::default());
    let query = Query::from_items([QueryItem::tags(["reader:1"])]);
    let read = store.read(&query, ReadOptions::new());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    assert!(matches!(ended, Ok(Err(_))), "the read failed instead of hanging: {ended:?}");
    silent.abort();
}

/// A transaction holding `store`'s events table locked against every statement on it.
async fn lock_the_events_table(store: &PgEventStore) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = store.pool().begin().await.unwrap();
    let events = format!("{}.events", store.config().schema);
    sqlx::query(sqlx::AssertSqlSafe(format!("LOCK TABLE {events} IN ACCESS EXCLUSIVE MODE")))
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// A store on `store`'s schema whose sessions carry a new name (returned) and `settings`.
fn store_with_settings(store: &PgEventStore, settings: &[(&str, &str)]) -> (String, PgEventStore) {
    let name = format!("pup-kept-{}", uuid::Uuid::new_v4().simple());
    let options: sqlx::postgres::PgConnectOptions = common::url().parse().unwrap();
    let options = options.application_name(&name).options(settings.iter().copied());
    let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy_with(options);
    (name, PgEventStore::new(pool, store.config().clone()))
}

/// The process ids of the test server's sessions named `name`.
async fn session_pids(admin: &sqlx::PgPool, name: &str) -> Vec<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid")
        .bind(name)
        .fetch_all(admin)
        .await
        .unwrap()
}

/// Ends every session named `name` and waits until the server has.
async fn end_sessions(admin: &sqlx::PgPool, name: &str) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(name)
    .execute(admin)
    .await
    .unwrap();
    assert!(
        no_sessions_soon(admin, name).await,
        "the server did not end the sessions named {name}"
    );
}

/// Whether the sessions named `name` are gone within two seconds (an ended one can linger a
/// moment in `pg_stat_activity`).
async fn no_sessions_soon(admin: &sqlx::PgPool, name: &str) -> bool {
    for _ in 0..100 {
        if sessions(admin, name).await == 0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

fn new_stream() -> StreamId {
    StreamId::new("Account", uuid::Uuid::new_v4())
}

fn record() -> CommandRecord {
    let data = serde_json::json!({ "n": 1 });
    CommandRecord { command_type: "Open".into(), data, metadata: None, positions: vec![] }
}

/// Appends that run alone (a lone single event, a batch, a recorded command) use the store's
/// kept connection, never the pool: a stream's life (`NoStream`, then `Exact`), a DCB append,
/// a batch and a recorded command, one after another, all run on one session of the store's
/// own. An append refused by the server (a failed expected version) keeps its connection too:
/// it is an answer, not a broken connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lone_appends_keep_their_connections_out_of_the_pool() {
    let Some((store, name, writer, _)) = reader_fixture().await else { return };
    for _ in 0..5 {
        let stream = new_stream();
        writer
            .append(&stream, ExpectedVersion::NoStream, &[NewEvent::new("A", "{}")])
            .await
            .unwrap();
        writer
            .append(&stream, ExpectedVersion::Exact(1), &[NewEvent::new("B", "{}")])
            .await
            .unwrap();
        let tagged = NewEvent::new("C", "{}").with_tags(["writer:1"]);
        writer.append_if(&[tagged], None).await.unwrap();
        let batch = [NewEvent::new("D", "{}"), NewEvent::new("E", "{}")];
        writer.append(&stream, ExpectedVersion::Exact(2), &batch).await.unwrap();
        writer.append_if_and_record(&[NewEvent::new("F", "{}")], None, &record()).await.unwrap();
    }
    // The wake-up notifications too ran on a kept connection, maybe beside an append.
    assert_eq!(writer.pool().size(), 0, "the appends never took a pool connection");
    assert!((1..=2).contains(&sessions(store.pool(), &name).await));

    // Without notifications, one connection serves every append.
    let (name, writer) = store_with_settings(&store, &[]);
    let writer = writer.with_notifications(false);
    for _ in 0..5 {
        writer.append_if(&[NewEvent::new("G", "{}")], None).await.unwrap();
    }
    let before = session_pids(store.pool(), &name).await;
    assert_eq!(before.len(), 1, "one kept connection served them all: {before:?}");

    let stream = new_stream();
    writer.append(&stream, ExpectedVersion::NoStream, &[NewEvent::new("A", "{}")]).await.unwrap();
    let again = [NewEvent::new("A", "{}")];
    let refused = writer.append(&stream, ExpectedVersion::NoStream, &again).await;
    assert!(matches!(refused, Err(Error::Concurrency { .. })), "{refused:?}");
    writer.append(&stream, ExpectedVersion::Exact(1), &[NewEvent::new("B", "{}")]).await.unwrap();
    assert_eq!(session_pids(store.pool(), &name).await, before, "the refusal kept its connection");
    assert_eq!(writer.pool().size(), 0);
}

/// A kept connection the server ended while it sat idle fails no append, and stores none
/// twice: the append runs again on the pool (appends are idempotent by event id). Each kind of
/// append that runs alone meets a kept connection ended just before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_on_a_kept_connection_ended_by_the_server_fails_not() {
    let Some((store, name, writer, _)) = reader_fixture().await else { return };
    // (Notifications would open connections while the test ends them.)
    let writer = writer.with_notifications(false);
    // Leaves a kept connection idle (the last call on a connection ended by the server ran on
    // the pool), then ends it.
    let end_a_kept_connection = async || {
        writer.append_if(&[NewEvent::new("Warm", "{}")], None).await.unwrap();
        end_sessions(store.pool(), &name).await;
    };
    let stream = new_stream();
    end_a_kept_connection().await;
    let first = [NewEvent::new("A", "{}")];
    writer.append(&stream, ExpectedVersion::NoStream, &first).await.unwrap();
    end_a_kept_connection().await;
    let second = [NewEvent::new("B", "{}")];
    let second = writer.append(&stream, ExpectedVersion::Exact(1), &second).await.unwrap();
    assert_eq!(second.versions, [2]);
    end_a_kept_connection().await;
    let batch = [NewEvent::new("C", "{}"), NewEvent::new("D", "{}")];
    let batch = writer.append(&stream, ExpectedVersion::Exact(2), &batch).await.unwrap();
    assert_eq!(batch.versions, [3, 4]);
    end_a_kept_connection().await;
    let recorded = [NewEvent::new("E", "{}")];
    let recorded = writer.append_if_and_record(&recorded, None, &record()).await.unwrap();
    assert!(!recorded.replayed);
    end_a_kept_connection().await;
    let tagged = NewEvent::new("F", "{}").with_tags(["writer:1"]);
    let condition = AppendCondition::none_match(Query::from_items([QueryItem::tags(["writer:1"])]));
    assert!(!writer.append_if(&[tagged], Some(&condition)).await.unwrap().replayed);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 4);
}

/// A conditional append that fails in a transaction of the store's own (here because the
/// session defaults to SERIALIZABLE, so the append runs again in a READ COMMITTED
/// transaction) leaves no transaction open on its kept connection: sqlx only queues the
/// ROLLBACK of a dropped transaction, and a kept connection that idled with it would hold the
/// append's locks until its next call, stalling every writer of those tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_append_in_a_transaction_of_the_stores_own_leaves_no_transaction_open() {
    let Some(store) = common::fresh_store().await else { return };
    let (name, serializable) =
        store_with_settings(&store, &[("default_transaction_isolation", "serializable")]);
    let serializable = serializable.with_notifications(false);
    let tagged = || NewEvent::new("Seen", "{}").with_tags(["kept:1"]);
    let condition = AppendCondition::none_match(Query::from_items([QueryItem::tags(["kept:1"])]));
    serializable.append_if(&[tagged()], Some(&condition)).await.unwrap();
    let failed = serializable.append_if(&[tagged()], Some(&condition)).await;
    assert!(matches!(failed, Err(Error::ConditionFailed { .. })), "{failed:?}");

    let states: Vec<Option<String>> =
        sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(states, [Some("idle".to_owned())], "the kept connection is out of any transaction");
    let other = [tagged()];
    let other = store.append_if(&other, None);
    let other = tokio::time::timeout(std::time::Duration::from_secs(5), other).await;
    assert!(matches!(other, Ok(Ok(_))), "another writer of the tag is not held up: {other:?}");
}

/// An error on a kept connection that still answers is the call's own: here a read cut short
/// by the session's `statement_timeout` fails once, is not run again on the pool (where it
/// would wait as long again), and its connection is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_that_fails_on_a_working_kept_connection_is_not_run_again() {
    let Some((store, _, _, query)) = reader_fixture().await else { return };
    let (name, reader) = store_with_settings(&store, &[("statement_timeout", "300ms")]);
    reader.read(&query, ReadOptions::new()).await.unwrap();
    let before = session_pids(store.pool(), &name).await;

    let lock = lock_the_events_table(&store).await;
    let started = std::time::Instant::now();
    let read = reader.read(&query, ReadOptions::new()).await;
    let waited = started.elapsed();
    lock.rollback().await.unwrap();
    assert!(matches!(read, Err(Error::Database(_))), "{read:?}");
    assert!(waited < std::time::Duration::from_millis(550), "the read ran once: {waited:?}");
    assert_eq!(reader.pool().size(), 0, "the read did not run again on the pool");
    assert_eq!(session_pids(store.pool(), &name).await, before, "its connection was kept");
    assert_eq!(reader.read(&query, ReadOptions::new()).await.unwrap().events.len(), 1);
}

/// A TCP proxy to the test server that, once armed, passes the next message of a client on to
/// the server but never its answer: it waits (the server commits meanwhile), then closes
/// that client's connection, as a network that failed right after the commit would.
struct AnswerDropper {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl AnswerDropper {
    async fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server: sqlx::postgres::PgConnectOptions = common::url().parse().unwrap();
        let upstream = format!("{}:{}", server.get_host(), server.get_port());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = std::sync::Arc::new(AtomicBool::new(false));
        let arming = armed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, armed) = (upstream.clone(), arming.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let cut = AtomicBool::new(false);
                    let up = async {
                        let mut buf = vec![0u8; 1 << 16];
                        loop {
                            let n = from_client.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            if armed.swap(false, Ordering::AcqRel) {
                                cut.store(true, Ordering::Release);
                            }
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 1 << 16];
                        loop {
                            let n = from_server.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            if cut.load(Ordering::Acquire) {
                                // The answer is lost; the server has committed by now.
                                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                                return;
                            }
                            if to_client.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    // Either side ending drops both sockets.
                    tokio::select! { () = up => {}, () = down => {} }
                });
            }
        });
        Self { port, armed, task }
    }

    /// A store on `store`'s schema whose connections go through the proxy.
    fn store(&self, store: &PgEventStore, name: &str) -> PgEventStore {
        let options: sqlx::postgres::PgConnectOptions = common::url().parse().unwrap();
        let options = options.host("127.0.0.1").port(self.port).application_name(name);
        let pool =
            sqlx::postgres::PgPoolOptions::new().max_connections(4).connect_lazy_with(options);
        PgEventStore::new(pool, store.config().clone()).with_notifications(false)
    }

    /// The next message any client sends is answered to no one.
    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for AnswerDropper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The position of the stored event `id` and how many events have that id.
async fn stored(store: &PgEventStore, id: uuid::Uuid) -> (i64, i64) {
    let sql = format!(
        "SELECT min(global_position), count(*) FROM {}.events WHERE event_id = $1",
        store.config().schema
    );
    sqlx::query_as::<_, (Option<i64>, i64)>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(store.pool())
        .await
        .map(|(position, count)| (position.unwrap_or(0), count))
        .unwrap()
}

/// An append on a kept connection that the server committed but whose answer was lost (the
/// connection failed right after the commit) runs again on the pool, which must answer a
/// replay with the first run's positions and versions, store nothing twice and record the
/// command once: for a stream's first event (`NoStream`: the retry finds the stream, and must
/// still say replay, not conflict), a conditional DCB append (the retry's condition matches
/// the first run's own event, and must still say replay, not condition failed) and a recorded
/// batch. Each case's statement was prepared on the kept connection by a warm-up of its kind,
/// so that the lost message is the one that runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_whose_answer_was_lost_after_its_commit_is_a_replay() {
    let Some(store) = common::fresh_store().await else { return };
    let proxy = AnswerDropper::start().await;
    let name = format!("pup-lost-{}", uuid::Uuid::new_v4().simple());
    let writer = proxy.store(&store, &name);

    // A stream's first event.
    let warm = NewEvent::new("Warm", "{}");
    writer.append(&new_stream(), ExpectedVersion::NoStream, &[warm]).await.unwrap();
    let (stream, event) = (new_stream(), NewEvent::new("A", "{}"));
    let id = event.event_id;
    proxy.arm();
    let appended = writer.append(&stream, ExpectedVersion::NoStream, &[event]).await.unwrap();
    let (position, count) = stored(&store, id).await;
    assert_eq!(count, 1);
    assert!(appended.replayed, "the lost answer's append ran again as a replay: {appended:?}");
    assert_eq!((appended.positions, appended.versions), (vec![position], vec![1]));

    // A conditional DCB append.
    let condition =
        |tag: &str| AppendCondition::none_match(Query::from_items([QueryItem::tags([tag])]));
    let warm = NewEvent::new("Warm", "{}").with_tags(["lost:0"]);
    writer.append_if(&[warm], Some(&condition("lost:0"))).await.unwrap();
    let event = NewEvent::new("B", "{}").with_tags(["lost:1"]);
    let id = event.event_id;
    proxy.arm();
    let appended = writer.append_if(&[event], Some(&condition("lost:1"))).await.unwrap();
    let (position, count) = stored(&store, id).await;
    assert_eq!(count, 1);
    assert!(appended.replayed, "{appended:?}");
    assert_eq!(appended.positions, [position]);

    // A recorded batch.
    let warm = [NewEvent::new("Warm", "{}"), NewEvent::new("Warm", "{}")];
    writer.append_if_and_record(&warm, None, &record()).await.unwrap();
    let batch = [NewEvent::new("C", "{}"), NewEvent::new("D", "{}")];
    let ids = [batch[0].event_id, batch[1].event_id];
    let mut command = record();
    command.command_type = "Lost".into();
    proxy.arm();
    let appended = writer.append_if_and_record(&batch, None, &command).await.unwrap();
    let (first, count) = stored(&store, ids[0]).await;
    let (second, _) = stored(&store, ids[1]).await;
    assert_eq!(count, 1);
    assert!(appended.replayed, "{appended:?}");
    assert_eq!(appended.positions, [first, second]);
    let sql = format!(
        "SELECT positions FROM {}.commands WHERE command_type = 'Lost'",
        store.config().schema
    );
    let recorded: Vec<Vec<i64>> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(store.pool()).await.unwrap();
    assert_eq!(recorded, [vec![first, second]], "the command was recorded once");
    writer.close().await;
}

/// Calls cancelled at any point (while a kept connection opens, while its statement runs, while
/// it is pinged after a refusal) give their slot back: one call after another still never
/// needs the pool, and at most four kept connections are open. A slot lost at each of four
/// cancellations would send every later call to the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_calls_give_their_kept_connections_back() {
    let Some((store, name, reader, query)) = reader_fixture().await else { return };
    let writer = reader.clone().with_notifications(false);
    let stream = new_stream();
    writer.append(&stream, ExpectedVersion::NoStream, &[NewEvent::new("A", "{}")]).await.unwrap();
    for step in 0..120u64 {
        let limit = std::time::Duration::from_micros(step * 25);
        let batch = [NewEvent::new("B", "{}"), NewEvent::new("C", "{}")];
        // A refused batch (a stale expected version), pinged after its refusal.
        let refused = writer.append(&stream, ExpectedVersion::NoStream, &batch);
        let _ = tokio::time::timeout(limit, refused).await;
        let _ = tokio::time::timeout(limit, writer.read(&query, ReadOptions::new())).await;
    }
    for _ in 0..8 {
        assert_eq!(writer.read(&query, ReadOptions::new()).await.unwrap().events.len(), 1);
    }
    assert_eq!(writer.pool().size(), 0, "no call needed the pool");
    // (The sessions of closed connections take a moment to end on the server.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let open = sessions(store.pool(), &name).await;
    assert!((1..=4).contains(&open), "{open} kept connections");
}

/// A batch that validation refuses takes no connection: it is refused before any is taken or
/// opened (a kept connection would otherwise be opened, or pinged after the refusal).
#[tokio::test]
async fn a_refused_batch_takes_no_connection() {
    let Some(store) = common::fresh_store().await else { return };
    let (name, writer) = store_with_settings(&store, &[]);
    let empty_type = [NewEvent::new("", "{}"), NewEvent::new("B", "{}")];
    let refused = writer.append(&new_stream(), ExpectedVersion::Any, &empty_type).await;
    assert!(matches!(refused, Err(Error::Validation(_))), "{refused:?}");
    let recorded = writer.append_if_and_record(&empty_type, None, &record()).await;
    assert!(matches!(recorded, Err(Error::Validation(_))), "{recorded:?}");
    assert_eq!(sessions(store.pool(), &name).await, 0, "no connection was opened");
    assert_eq!(writer.pool().size(), 0);
}

/// A store on `store`'s schema whose pool has these idle timeout and maximum lifetime, and
/// whose sessions carry a new name (returned); without wake-up notifications, so that one
/// kept connection serves its calls one after another.
fn store_with_limits(
    store: &PgEventStore,
    idle_timeout: Option<std::time::Duration>,
    max_lifetime: Option<std::time::Duration>,
) -> (String, PgEventStore) {
    let name = format!("pup-recycled-{}", uuid::Uuid::new_v4().simple());
    let options: sqlx::postgres::PgConnectOptions = common::url().parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .idle_timeout(idle_timeout)
        .max_lifetime(max_lifetime)
        .connect_lazy_with(options.application_name(&name));
    (name, PgEventStore::new(pool, store.config().clone()).with_notifications(false))
}

/// The session named `name` once the server shows exactly one (an ended one can linger a
/// moment in `pg_stat_activity`).
async fn only_session(admin: &sqlx::PgPool, name: &str) -> i32 {
    for _ in 0..100 {
        if let [pid] = session_pids(admin, name).await[..] {
            return pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("sessions named {name}: {:?}", session_pids(admin, name).await);
}

/// Kept connections follow the pool's idle timeout and maximum lifetime: one idle longer, or
/// open longer, is closed and replaced at its next call (as a firewall may drop an idle
/// connection without a word, which would hold that call until the socket timed out); one
/// within both limits serves call after call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connections_are_recycled() {
    let Some((store, _, _, query)) = reader_fixture().await else { return };
    let ms = std::time::Duration::from_millis;
    let read = |s: &PgEventStore| {
        let (s, query) = (s.clone(), query.clone());
        async move { assert_eq!(s.read(&query, ReadOptions::new()).await.unwrap().events.len(), 1) }
    };

    let (idle_name, idle) = store_with_limits(&store, Some(ms(400)), None);
    read(&idle).await;
    let first = only_session(store.pool(), &idle_name).await;
    // Calls 100 ms apart for longer than the idle timeout: the idle time counts from the last
    // call, not from the open.
    for _ in 0..7 {
        tokio::time::sleep(ms(100)).await;
        read(&idle).await;
    }
    assert_eq!(
        only_session(store.pool(), &idle_name).await,
        first,
        "a connection within its limits"
    );
    tokio::time::sleep(ms(600)).await;
    idle.append_if(&[NewEvent::new("A", "{}")], None).await.unwrap();
    let second = only_session(store.pool(), &idle_name).await;
    assert_ne!(second, first, "a connection idle past the pool's idle timeout was used again");

    let (aging_name, aging) = store_with_limits(&store, None, Some(ms(500)));
    read(&aging).await;
    let first = only_session(store.pool(), &aging_name).await;
    for _ in 0..8 {
        tokio::time::sleep(ms(100)).await;
        read(&aging).await;
    }
    let last = only_session(store.pool(), &aging_name).await;
    assert_ne!(last, first, "a connection open past the pool's maximum lifetime was used again");

    // Every recycled connection gave its slot back: close() waits for none and ends them all.
    for (name, recycled) in [(aging_name, aging), (idle_name, idle)] {
        let closed = tokio::time::timeout(ms(5000), recycled.close()).await;
        assert!(closed.is_ok(), "close() waited for a slot a recycled connection never gave back");
        assert!(no_sessions_soon(store.pool(), &name).await, "sessions left open after close()");
    }
}
