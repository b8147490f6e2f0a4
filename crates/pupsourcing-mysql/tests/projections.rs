//! The projection suite on MySQL / MariaDB, each test in a new database with a read-model
//! table, and the crash test with a real child process killed by SIGKILL. Processors poll for
//! new events: MySQL has no NOTIFY.

mod common;

use common::read_model::{fresh, store_with_model};

pupsourcing_testkit::projection_conformance!(fresh);

pupsourcing_testkit::killed_child_process_test!(
    projections::killed_processor_resumes_exactly_once, run_until_killed;
    common::unique_database(), store_with_model
);

// Not `an_open_writer_holds_the_projection_back`: its second writer commits while the first
// is still open, which the counter lock forbids on MySQL (the second waits for the first). The
// stall it checks is tested in projection_store.rs (`the_stall_names_the_open_appender`).

/// The processor's sessions are killed again and again while it works: it resumes from its
/// checkpoint each time, applying every event exactly once, under every poison policy. The
/// processor's store connects to the test's own database, so that its sessions can be told
/// from every other (they show that database in the process list). Its pool pings a
/// connection before handing it out (sqlx's default, as the PostgreSQL test's pool does; the
/// store's own pools skip it): the test reads checkpoints through that pool, and the session
/// of a killed batch, back in the pool, would otherwise fail the test's read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_resume_exactly_once() {
    use pupsourcing_mysql::{MySqlEventStore, sqlx};
    let Some((killer, model)) = fresh().await else { return };
    let database = killer.config().schema.to_string();
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(common::POOL_SIZE)
        .connect_lazy(&common::url_for(&database))
        .unwrap();
    let store = MySqlEventStore::new(pool, killer.config().clone());
    let kill = move || {
        let (killer, database) = (killer.pool().clone(), database.clone());
        async move {
            // The store's sessions running a statement or in a transaction. The transactions
            // come from SHOW ENGINE INNODB STATUS, made on demand: MariaDB's process list does
            // not tell whether a sleeping session is in one, and its INNODB_TRX view is a cache
            // refreshed at most every 0.1 s.
            let status: (String, String, String) =
                sqlx::query_as("SHOW ENGINE INNODB STATUS").fetch_one(&killer).await.unwrap();
            let in_transaction = active_transactions(&status.2);
            let sql = "SELECT p.ID, p.COMMAND FROM information_schema.PROCESSLIST AS p \
                       WHERE p.ID <> CONNECTION_ID() AND p.DB = ?";
            let sessions: Vec<(i64, String)> =
                sqlx::query_as(sql).bind(&database).fetch_all(&killer).await.unwrap();
            let ids = sessions.into_iter().filter_map(|(id, command)| {
                let working = command != "Sleep" || in_transaction.contains(&id);
                working.then_some(id)
            });
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

/// The connection ids of the active transactions in InnoDB's status text.
fn active_transactions(status: &str) -> Vec<i64> {
    let mut active = false;
    let mut ids = Vec::new();
    for line in status.lines() {
        if line.starts_with("---TRANSACTION") {
            active = line.contains("ACTIVE");
        } else if let Some(rest) = line
            .strip_prefix("MariaDB thread id ")
            .or_else(|| line.strip_prefix("MySQL thread id "))
            && active
        {
            ids.extend(rest.split(',').next().and_then(|id| id.trim().parse::<i64>().ok()));
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_processor_stops_when_its_shard_moves() {
    let Some((store, model)) = fresh().await else { return };
    pupsourcing_testkit::projections::a_fenced_processor_stops_when_its_shard_moves(store, model)
        .await;
}
