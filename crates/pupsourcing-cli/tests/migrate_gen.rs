//! The `pup migrate-gen` command, run as a user would.

use std::process::Command;

fn pup(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pup")).args(args).output().expect("pup runs")
}

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("pup-cli-{}", std::process::id()))
}

#[test]
fn writes_postgres_sql_with_the_configured_names() {
    let dir = temp_dir().join("pg");
    let out = pup(&[
        "migrate-gen",
        "--adapter",
        "postgres",
        "--output",
        dir.to_str().unwrap(),
        "--file-name",
        "0001_events.sql",
        "--schema",
        "billing",
        "--events-table",
        "ledger",
        "--aggregate-heads-table",
        "ledger_heads",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = std::fs::read_to_string(dir.join("0001_events.sql")).unwrap();
    assert!(sql.contains("CREATE TABLE IF NOT EXISTS billing.ledger ("));
    assert!(sql.contains("billing.ledger_heads"));
    assert!(!sql.contains("{events}"), "every placeholder is filled");
}

#[test]
fn writes_sqlite_sql() {
    let dir = temp_dir().join("sqlite");
    let out = pup(&["migrate-gen", "--adapter", "sqlite", "--output", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap();
    assert!(sql.contains("events"));
    assert!(!sql.contains('{') || !sql.contains("{events}"));
}

#[test]
fn refuses_invalid_names_with_a_clear_message() {
    let dir = temp_dir().join("bad");
    let out = pup(&["migrate-gen", "--output", dir.to_str().unwrap(), "--events-table", "x; DROP"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a valid identifier"), "{err}");
    assert!(!dir.join("001_pupsourcing.sql").exists(), "nothing written");
}
