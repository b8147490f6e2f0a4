//! `pup bench`: one short workload end to end on PostgreSQL (the bench's workloads are
//! PostgreSQL's), each output format, and its errors.

mod common;

use common::{Db, pup};
use predicates::str::contains;

/// The smallest run: one append scenario, 1 s per side, no seeding, reads or orchestrator.
const SHORT: [&str; 9] = [
    "--seconds",
    "1",
    "--filter",
    "append 1 event, 1 task",
    "--skip-read",
    "--skip-orchestrator",
    "--seed-events",
    "0",
    "--connections=40",
];

#[test]
fn a_short_run_reports_the_library_beside_the_floor() {
    let Some(db) = Db::postgres() else { return };
    let bench = |format: Option<&str>| {
        let mut args = vec!["bench"];
        args.extend(SHORT);
        args.extend(format);
        pup().args(["--database-url", &db.url]).args(&args).output().unwrap()
    };
    let out = bench(Some("--json"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(rows[0]["scenario"], "append 1 event, 1 task");
    for side in ["library", "floor", "same_rows_floor"] {
        assert!(rows[0][side]["events_per_sec"].as_f64().unwrap() > 0.0, "{side}: {report}");
        assert!(
            rows[0][side]["p99_ms"].as_f64().unwrap() >= rows[0][side]["p50_ms"].as_f64().unwrap()
        );
    }
    assert!(rows[0]["ratio"].as_f64().unwrap() > 0.0);
    // Progress (not a terminal: lines) on standard error, the report alone on standard output.
    assert!(String::from_utf8_lossy(&out.stderr).contains("append 1 event, 1 task: library"));
    let markdown = bench(Some("--markdown"));
    let markdown = String::from_utf8(markdown.stdout).unwrap();
    assert!(markdown.contains("| scenario | library ev/s |"), "{markdown}");
    assert!(markdown.contains("| append 1 event, 1 task |"), "{markdown}");
}

#[test]
fn bench_runs_on_postgresql_only() {
    let db = Db::sqlite().unwrap();
    pup()
        .args(["--database-url", &db.url, "bench"])
        .assert()
        .code(1)
        .stderr(contains("PostgreSQL only"));
    pup()
        .args(["--database-url", common::CLOSED_PORT_URL, "bench"])
        .assert()
        .code(1)
        .stderr(contains("benchmark failed"))
        .stderr(contains("refused"));
    pup()
        .args(["--database-url", "sqlite::memory:", "bench", "--json", "--markdown"])
        .assert()
        .code(2);
}
