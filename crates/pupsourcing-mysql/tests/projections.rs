//! The projection suite on MySQL / MariaDB, each test in a new database with a read-model
//! table, and the crash test with a real child process killed by SIGKILL. Processors poll for
//! new events: MySQL has no NOTIFY.

mod common;

use common::read_model::{fresh, store_with_model};

pupsourcing_testkit::projection_conformance!(fresh);

/// The environment variable that makes this test binary the crash test's child.
const CHILD_DATABASE: &str = "PUP_CRASH_CHILD_DATABASE";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_processor_resumes_exactly_once() {
    if let Ok(database) = std::env::var(CHILD_DATABASE) {
        let (store, model) = store_with_model(&database).await.expect("the parent reached it");
        return pupsourcing_testkit::projections::run_until_killed(store, model).await;
    }
    let database = common::unique_database();
    let Some((store, model)) = store_with_model(&database).await else { return };
    pupsourcing_testkit::projections::killed_processor_resumes_exactly_once(store, model, || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["killed_processor_resumes_exactly_once", "--exact", "--nocapture"])
            .env(CHILD_DATABASE, &database)
            .spawn()
            .unwrap()
    })
    .await;
}

// Not `an_open_writer_holds_the_projection_back`: its second writer commits while the first
// is still open, which the counter lock forbids on MySQL (the second waits for the first). The
// stall it checks is tested in projection_store.rs (`the_stall_names_the_open_appender`).

/// The processor's sessions are killed again and again while it works: it resumes from its
/// checkpoint each time, applying every event exactly once, under every poison policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_resume_exactly_once() {
    use pupsourcing_mysql::sqlx;
    let Some((store, model)) = fresh().await else { return };
    let database = store.config().schema.to_string();
    let killer = store.pool().clone();
    let kill = move || {
        let (killer, database) = (killer.clone(), database.clone());
        async move {
            // Sessions in a transaction or running a statement on this database's tables.
            let sql = "SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX AS t \
                       JOIN information_schema.PROCESSLIST AS p ON p.ID = t.trx_mysql_thread_id \
                       WHERE p.ID <> CONNECTION_ID() AND p.DB = ? \
                       UNION SELECT p.ID FROM information_schema.PROCESSLIST AS p \
                       WHERE p.ID <> CONNECTION_ID() AND p.COMMAND = 'Query' \
                       AND p.INFO LIKE CONCAT('%', ?, '%')";
            let ids: Vec<u64> = sqlx::query_scalar(sql)
                .bind(&database)
                .bind(&database)
                .fetch_all(&killer)
                .await
                .unwrap_or_default();
            let mut killed = 0;
            for id in ids {
                let kill = format!("KILL CONNECTION {id}");
                if sqlx::raw_sql(sqlx::AssertSqlSafe(kill)).execute(&killer).await.is_ok() {
                    killed += 1;
                }
            }
            killed
        }
    };
    pupsourcing_testkit::projections::killed_connections_resume_exactly_once(store, model, kill)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_processor_stops_when_its_shard_moves() {
    let Some((store, model)) = fresh().await else { return };
    pupsourcing_testkit::projections::a_fenced_processor_stops_when_its_shard_moves(store, model)
        .await;
}
