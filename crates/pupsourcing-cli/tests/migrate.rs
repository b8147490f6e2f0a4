//! `pup migrate apply` and `pup migrate status` end to end, on SQLite, PostgreSQL and
//! MySQL/MariaDB.

mod common;

use common::Db;
use predicates::str::contains;

on_every_backend!(
    status_then_apply_then_status,
    apply_is_idempotent,
    configured_table_names_are_used,
);

fn status_then_apply_then_status(db: Db) {
    // Before: not applied, exit 1, with the way out. (SQLite: no file yet, so refused without
    // creating one.)
    let before = db.pup(&["migrate", "status"]).assert().code(1);
    if let Some(file) = &db.file {
        before.stderr(contains("no SQLite database"));
        assert!(!file.exists(), "status creates no database");
    } else {
        before.stdout(contains("not applied")).stderr(contains("pup migrate apply"));
    }
    let created = format!("{} table(s) created", db.schema_objects());
    db.pup(&["migrate", "apply"]).assert().success().stdout(contains(created));
    db.pup(&["migrate", "status"]).assert().success().stdout(contains("schema applied"));
    let json: serde_json::Value =
        serde_json::from_str(&db.ok(&["migrate", "status", "--json"])).unwrap();
    assert_eq!(json["applied"], true);
    assert_eq!(json["tables"].as_array().unwrap().len(), db.schema_objects());
    assert!(json["tables"].as_array().unwrap().iter().all(|t| t["present"] == true));
}

fn apply_is_idempotent(db: Db) {
    db.ok(&["migrate", "apply"]);
    db.pup(&["migrate", "apply"]).assert().success().stdout(contains("already applied"));
    db.pup(&["migrate", "status"]).assert().success();
}

/// The table flags are global: the tables `apply` creates are those `status` and `append`
/// look for, and another events table in the same place is another store.
fn configured_table_names_are_used(db: Db) {
    let ledger = ["--events-table", "ledger", "--checkpoints-table", "ledger_positions"];
    fn with<'a>(ledger: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        [ledger, args].concat()
    }
    db.ok(&with(&ledger, &["migrate", "apply"]));
    let json: serde_json::Value =
        serde_json::from_str(&db.ok(&with(&ledger, &["migrate", "status", "--json"]))).unwrap();
    let names: Vec<&str> =
        json["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"ledger") && names.contains(&"ledger_positions"), "{names:?}");
    db.ok(&with(&ledger, &["append", "--type", "Booked", "--tag", "a:1"]));
    // The default events table was never created there.
    db.pup(&["status"]).assert().code(1).stderr(contains("missing tables: events"));
}
