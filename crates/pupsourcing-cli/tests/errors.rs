//! What `pup` says when it cannot work: no URL, an unknown scheme, an unreachable server, a
//! database without the schema, bad arguments; and `--help` and completions.

mod common;

use std::time::{Duration, Instant};

use common::{CLOSED_PORT_URL, Db, MYSQL_CLOSED_PORT_URL, pup};
use predicates::prelude::*;
use predicates::str::contains;

const DATABASE_COMMANDS: [&[&str]; 8] = [
    &["status"],
    &["tail", "--no-follow"],
    &["projection", "list"],
    &["projection", "reset", "orders", "--yes"],
    &["dead-letters", "list"],
    &["append", "--type", "X"],
    &["migrate", "status"],
    &["migrate", "apply"],
];

#[test]
fn no_database_url_says_how_to_give_one() {
    for args in DATABASE_COMMANDS {
        pup()
            .args(args)
            .assert()
            .code(1)
            .stderr(contains("no database URL"))
            .stderr(contains("DATABASE_URL"));
    }
}

#[test]
fn database_url_comes_from_the_environment_too() {
    let db = Db::sqlite().unwrap();
    pup().env("DATABASE_URL", &db.url).args(["migrate", "apply"]).assert().success();
    pup()
        .env("DATABASE_URL", &db.url)
        .args(["status"])
        .assert()
        .success()
        .stdout(contains("head: 0"));
}

#[test]
fn an_unreachable_server_fails_fast_and_says_so() {
    let servers = [
        (CLOSED_PORT_URL, "cannot connect to PostgreSQL at 127.0.0.1:1"),
        (MYSQL_CLOSED_PORT_URL, "cannot connect to MySQL at 127.0.0.1:1"),
        // `mariadb://` is MySQL's driver too.
        ("mariadb://root@127.0.0.1:1/test", "cannot connect to MySQL at 127.0.0.1:1"),
    ];
    for (url, message) in servers {
        for args in DATABASE_COMMANDS {
            let started = Instant::now();
            pup()
                .args(["--database-url", url])
                .args(args)
                .assert()
                .code(1)
                .stderr(contains(message))
                .stderr(contains("refused"))
                .stderr(contains("check that the server is running"));
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{url} {args:?} took {:?}",
                started.elapsed()
            );
        }
    }
}

#[test]
fn other_schemes_are_refused() {
    pup()
        .args(["--database-url", "redis://localhost", "status"])
        .assert()
        .code(1)
        .stderr(contains("unsupported database URL"));
    pup()
        .args(["--database-url", "postgres://u:secret@127.0.0.1:1/x", "bench"])
        .assert()
        .code(1)
        .stderr(contains("secret").not());
    pup()
        .args(["--database-url", "mysql://u:secret@127.0.0.1:1/x", "status"])
        .assert()
        .code(1)
        .stderr(contains("secret").not());
}

/// `mariadb://` URLs name the MySQL backend: the same store as `mysql://`.
#[test]
fn mariadb_urls_are_mysql_urls() {
    let Some(db) = Db::mysql() else { return };
    let db = db.migrated();
    db.ok(&["append", "--type", "ViaMysql"]);
    let mariadb = db.url.replacen("mysql://", "mariadb://", 1);
    let schema = db.schema.as_deref().unwrap();
    pup()
        .args([
            "--database-url",
            &mariadb,
            "--schema",
            schema,
            "tail",
            "--from",
            "1",
            "--no-follow",
        ])
        .assert()
        .success()
        .stdout(contains("ViaMysql"));
}

#[test]
fn a_missing_sqlite_file_is_not_created() {
    let db = Db::sqlite().unwrap();
    for args in DATABASE_COMMANDS.iter().filter(|a| **a != ["migrate", "apply"]) {
        db.pup(args).assert().code(1).stderr(contains("no SQLite database"));
    }
    assert!(!db.file.unwrap().exists());
}

on_every_backend!(a_database_without_the_schema_is_named);

/// Every command but `migrate` refuses a database without the schema, saying what to run,
/// and creates nothing.
fn a_database_without_the_schema_is_named(db: Db) {
    if let Some(file) = &db.file {
        std::fs::write(file, b"").unwrap(); // An empty SQLite database.
    }
    for args in DATABASE_COMMANDS.iter().filter(|a| a[0] != "migrate") {
        db.pup(args)
            .assert()
            .code(1)
            .stderr(contains("the pupsourcing schema is not applied"))
            .stderr(contains("run `pup migrate apply`"));
    }
    db.pup(&["migrate", "status"]).assert().code(1).stdout(contains("not applied"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let url = ["--database-url", "sqlite::memory:"];
    for args in [
        &["status", "--max-lag", "many"][..],
        &["tail", "--from", "x"],
        &["tail", "--tag", "a:1", "--query", "[]"],
        &["append"],
        &["append", "--type", "X", "--expected-version", "3"],
        &["append", "--type", "X", "--after", "3"],
        &["dead-letters", "discard", "p"],
        &["projection", "reset"],
        &["frobnicate"],
        &["completions", "tcsh"],
    ] {
        pup().args(url).args(args).assert().code(2).stderr(contains("error:"));
    }
    // Refused by the command itself, before touching the store.
    let db = Db::sqlite().unwrap().migrated();
    for (args, message) in [
        (&["tail", "--query", "{\"kinds\": []}"][..], "unknown key"),
        (&["tail", "--query", "[{}]"], "needs at least one event type or tag"),
        (&["append", "--type", "X", "--data", "{"], "--data is not valid JSON"),
        (&["append", "--type", "X", "--stream", "Order/42"], "is not TYPE/UUID"),
        (&["append", "--type", "", "--tag", "a"], "event type"),
        (&["--events-table", "x; DROP", "status"], "not a valid identifier"),
    ] {
        db.pup(args).assert().code(1).stderr(contains(message));
    }
}

#[test]
fn help_everywhere() {
    for args in [
        &["--help"][..],
        &["migrate", "--help"],
        &["migrate", "generate", "--help"],
        &["migrate", "apply", "--help"],
        &["migrate", "status", "--help"],
        &["migrate-gen", "--help"],
        &["status", "--help"],
        &["tail", "--help"],
        &["projection", "reset", "--help"],
        &["dead-letters", "replay", "--help"],
        &["append", "--help"],
        &["bench", "--help"],
        &["completions", "--help"],
    ] {
        pup().args(args).assert().success().stdout(contains("Usage: pup"));
    }
    pup()
        .args(["projection", "reset", "--help"])
        .assert()
        .stdout(contains("cannot run its `reset` hook"));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        pup().args(["completions", shell]).assert().success().stdout(contains("dead-letters"));
    }
}
