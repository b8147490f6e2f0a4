//! `pup bench`: one short workload end to end on PostgreSQL and on MySQL/MariaDB, each output
//! format, and its errors (SQLite has no workloads).

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

/// MySQL: one append scenario and the catch-up read of a small log, 1 s per side.
#[test]
fn a_short_mysql_run_reports_appends_and_the_catch_up_read() {
    let Some(db) = Db::mysql() else { return };
    let bench = |format: &str| {
        let args = [
            "bench",
            "--seconds",
            "1",
            "--seed-events",
            "1000",
            "--read-events",
            "2000",
            "--filter",
            "append 1 event, 1 task",
            format,
        ];
        pup().args(["--database-url", &db.url]).args(args).output().unwrap()
    };
    let out = bench("--json");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["scenario"].as_str().unwrap()).collect();
    assert_eq!(names, ["append 1 event, 1 task", "catch-up read 2000, pages of 1000"], "{report}");
    for row in rows {
        for side in ["library", "floor"] {
            assert!(row[side]["events_per_sec"].as_f64().unwrap() > 0.0, "{side}: {report}");
            assert!(row[side]["p99_ms"].as_f64().unwrap() >= row[side]["p50_ms"].as_f64().unwrap());
        }
        assert!(row["ratio"].as_f64().unwrap() > 0.0);
    }
    assert!(report["header"].as_str().unwrap().contains("pupsourcing-bench (MySQL)"), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("append 1 event, 1 task: library"), "{stderr}");
    let markdown = bench("--markdown");
    assert!(markdown.status.success(), "{}", String::from_utf8_lossy(&markdown.stderr));
    let markdown = String::from_utf8(markdown.stdout).unwrap();
    assert!(markdown.contains("| scenario | library ev/s |"), "{markdown}");
    assert!(markdown.contains("| catch-up read 2000, pages of 1000 |"), "{markdown}");
}

#[test]
fn bench_refuses_sqlite() {
    let db = Db::sqlite().unwrap();
    pup()
        .args(["--database-url", &db.url, "bench"])
        .assert()
        .code(1)
        .stderr(contains("not SQLite"))
        .stderr(contains("postgres:// or mysql://"));
    pup()
        .args(["--database-url", common::CLOSED_PORT_URL, "bench"])
        .assert()
        .code(1)
        .stderr(contains("benchmark failed"))
        .stderr(contains("refused"));
    pup()
        .args(["--database-url", common::MYSQL_CLOSED_PORT_URL, "bench", "--seconds", "1"])
        .assert()
        .code(1)
        .stderr(contains("benchmark failed"))
        .stderr(contains("refused"));
    pup()
        .args(["--database-url", "sqlite::memory:", "bench", "--json", "--markdown"])
        .assert()
        .code(2);
}
