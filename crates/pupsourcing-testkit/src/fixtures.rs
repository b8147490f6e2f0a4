//! Small helpers shared by the conformance tests and backend test files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pupsourcing_core::{EventStore, NewEvent, Position, StreamId};
use uuid::Uuid;

/// A fresh stream of aggregate type `Account`.
pub fn new_stream() -> StreamId {
    StreamId::new("Account", Uuid::now_v7())
}

/// A small JSON event of type `event_type`.
pub fn event(event_type: &str) -> NewEvent {
    NewEvent::json(event_type, &serde_json::json!({ "n": rand::random::<u32>() }))
        .expect("a JSON value always serializes")
}

/// Spawns a reader tailing the global log from position 1, `page` events per read, each read
/// continuing after the last position it returned, until `writing` is false and a read comes
/// back empty. Returns every event it saw, as (position, id), in the order read: a gap-free log
/// gives each committed event exactly once, in increasing positions.
pub fn spawn_tail<S>(
    store: S,
    writing: Arc<AtomicBool>,
    page: usize,
) -> tokio::task::JoinHandle<Vec<(Position, Uuid)>>
where
    S: EventStore + Clone + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let (mut seen, mut next) = (Vec::new(), 1);
        loop {
            // Read before the page: a page read after the writers stopped has everything.
            let still_writing = writing.load(Ordering::SeqCst);
            let events = store.read_all(next, page).await.unwrap();
            next = events.last().map_or(next, |e| e.position + 1);
            let caught_up = events.is_empty();
            seen.extend(events.into_iter().map(|e| (e.position, e.event_id)));
            if caught_up && !still_writing {
                return seen;
            }
            if caught_up {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    })
}

/// The value of environment variable `name`, or `default`.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// How long stress tests run: `PUP_STRESS_SECS` seconds (default 3).
pub fn stress_duration() -> Duration {
    let secs = env_or("PUP_STRESS_SECS", "3").parse().unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Call when a test's database server cannot be reached. Under `CI=true` the test fails;
/// otherwise the test is skipped (it returns `None`; libtest still lists it as `ok`).
///
/// The first call of a test binary for each `server` prints one line saying that its tests of
/// that server are skipped and why. It writes to the process's stderr directly: libtest
/// captures only the `print!` and `eprint!` macros, so the line shows without `--nocapture`.
pub fn unreachable<T>(server: &str, error: impl std::fmt::Display) -> Option<T> {
    use std::io::Write;
    // The servers already announced: a binary may test several (the CLI's: all three).
    static ANNOUNCED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let message = format!("{server} is unreachable ({error})");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}; CI=true requires every database server");
    }
    let mut announced = ANNOUNCED.lock().unwrap_or_else(|e| e.into_inner());
    if !announced.iter().any(|s| s == server) {
        announced.push(server.to_string());
        let binary = std::env::args().next().unwrap_or_default();
        let file = binary.rsplit(['/', '\\']).next().unwrap_or_default();
        // Test binaries are named `<test file>-<hash>`.
        let binary = file.rsplit_once('-').map_or(file, |(name, _)| name).to_string();
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: every {server} test of {binary}: {message}; start the server or set its URL variable"
        );
    }
    None
}

/// A child process killed (SIGKILL on Unix) when dropped, so that a test failing before it
/// kills its child on purpose leaves no process behind.
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    /// Kills the child now (SIGKILL on Unix) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Whether the child has exited, and how.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Environment variable: the database (on PostgreSQL, the schema) a child process of a test
/// works on; set, the test binary runs as that child (a worker process).
pub const CHILD_DATABASE: &str = "PUP_TEST_CHILD_DATABASE";

/// Starts this test binary again as the child process of test `test` on `database` (see
/// [`CHILD_DATABASE`]), with the given further environment variables.
pub fn spawner(
    test: &'static str,
    database: &str,
) -> impl Fn(&[(&'static str, String)]) -> std::process::Child + use<> {
    let database = database.to_string();
    move |vars| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture"])
            .env(CHILD_DATABASE, &database)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .spawn()
            .unwrap()
    }
}
