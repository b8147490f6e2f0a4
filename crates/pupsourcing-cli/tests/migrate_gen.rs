//! The `pup migrate-gen` command, run as a user would.

mod common;

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
        "Ledger_Streams",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = std::fs::read_to_string(dir.join("0001_events.sql")).unwrap();
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "billing"."ledger" ("#));
    assert!(sql.contains(r#""billing"."ledger_streams""#), "names fold to lower case");
    assert!(sql.contains(r#""billing"."ledger_commands""#));
    assert!(!sql.contains("{events}"), "every placeholder is filled");
}

/// The heads and commands tables follow the events table unless given, as in `StoreConfig`.
#[test]
fn names_the_other_tables_after_the_events_table() {
    let generate = |dir: &str, extra: &[&str]| {
        let dir = temp_dir().join(dir);
        let mut args = vec!["migrate-gen", "--output", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = pup(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap()
    };
    let default = generate("default", &[]);
    assert!(default.contains(r#"CREATE TABLE IF NOT EXISTS "public"."aggregate_heads""#));
    assert!(default.contains(r#"CREATE TABLE IF NOT EXISTS "public"."commands""#));
    let orders = generate("orders", &["--events-table", "orders"]);
    assert!(orders.contains(r#"CREATE TABLE IF NOT EXISTS "public"."orders_heads""#));
    assert!(orders.contains(r#"CREATE TABLE IF NOT EXISTS "public"."orders_commands""#));
    let sqlite = generate("sqlite-orders", &["--adapter", "sqlite", "--events-table", "orders"]);
    assert!(sqlite.contains(r#"CREATE TABLE IF NOT EXISTS "orders_heads""#));
}

#[test]
fn refuses_an_events_table_name_whose_derived_names_do_not_fit() {
    let dir = temp_dir().join("long");
    let long = "e".repeat(45);
    let out = pup(&["migrate-gen", "--output", dir.to_str().unwrap(), "--events-table", &long]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 44"), "{err}");
    assert!(!dir.join("001_pupsourcing.sql").exists(), "nothing written");
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

/// The projection tables are in the output for both adapters, named as configured.
#[test]
fn writes_the_projection_tables() {
    for adapter in ["postgres", "sqlite"] {
        let dir = temp_dir().join(format!("projections-{adapter}"));
        let out = pup(&[
            "migrate-gen",
            "--adapter",
            adapter,
            "--output",
            dir.to_str().unwrap(),
            "--checkpoints-table",
            "read_model_positions",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let sql = std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap();
        assert!(sql.contains(r#"read_model_positions""#), "{adapter}: the configured name");
        assert!(sql.contains(r#"projection_dead_letters""#), "{adapter}: the default name");
        assert!(sql.contains("partition_hash"), "{adapter}: the partition column");
    }
    let dir = temp_dir().join("projections-clash");
    let out = pup(&[
        "migrate-gen",
        "--output",
        dir.to_str().unwrap(),
        "--dead-letters-table",
        "commands",
    ]);
    assert!(!out.status.success(), "a dead letters table named like the commands table");
}

/// The orchestrator's tables, with the reference's flags for their names.
#[test]
fn writes_the_orchestrator_tables() {
    let dir = temp_dir().join("orchestrator-pg");
    let out = pup(&[
        "migrate-gen",
        "--output",
        dir.to_str().unwrap(),
        "--schema",
        "orchestrator",
        "--workers-table",
        "pup_workers",
        "--projection-shards-table",
        "shard_owners",
        "--recreate-lock-table",
        "deploy_lock",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap();
    for table in ["pup_workers", "shard_owners", "deploy_lock"] {
        let created = format!(r#"CREATE TABLE IF NOT EXISTS "orchestrator"."{table}""#);
        assert!(sql.contains(&created), "{table}");
    }
}

/// `pup migrate generate` and `pup migrate-gen` write the same file.
#[test]
fn migrate_generate_is_migrate_gen() {
    let write = |dir: &str, command: &[&str]| {
        let dir = temp_dir().join(dir);
        let mut args = command.to_vec();
        args.extend(["--adapter", "sqlite", "--output", dir.to_str().unwrap()]);
        let out = pup(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap()
    };
    let generated = write("generate", &["migrate", "generate"]);
    assert_eq!(generated, write("gen", &["migrate-gen"]));
    assert!(generated.contains("recreate_lock"));
}

/// The table flags of every command, for the MySQL tests below.
const MYSQL_TABLES: [&str; 16] = [
    "--events-table",
    "ledger",
    "--aggregate-heads-table",
    "ledger_streams",
    "--commands-table",
    "ledger_cmds",
    "--checkpoints-table",
    "read_model_positions",
    "--dead-letters-table",
    "parked",
    "--workers-table",
    "pup_workers",
    "--projection-shards-table",
    "shard_owners",
    "--recreate-lock-table",
    "deploy_lock",
];

/// MySQL: `--schema` is the database (created first), and every table flag names its table;
/// the tables named after the events table follow `--events-table`.
#[test]
fn writes_mysql_sql_with_every_configured_name() {
    let dir = temp_dir().join("mysql");
    let mut args = vec!["migrate-gen", "--adapter", "mysql", "--output", dir.to_str().unwrap()];
    args.extend(["--schema", "billing"]);
    args.extend(MYSQL_TABLES);
    let out = pup(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap();
    assert!(sql.starts_with("CREATE DATABASE IF NOT EXISTS `billing`"), "{sql}");
    for table in [
        "ledger",
        "ledger_counter",
        "ledger_streams",
        "ledger_tags",
        "ledger_locks",
        "pup_workers_locks",
        "ledger_cmds",
        "read_model_positions",
        "parked",
        "pup_workers",
        "shard_owners",
        "deploy_lock",
    ] {
        let created = format!("CREATE TABLE IF NOT EXISTS `billing`.`{table}` (");
        assert!(sql.contains(&created), "{table}");
    }
    assert!(!sql.contains("CREATE PROCEDURE"), "no procedure any more");
    assert!(!sql.contains("`events"), "no default name left: the events table is ledger");
    assert!(!sql.contains("{events") && !sql.contains("{now}"), "every placeholder filled");
    // The default schema, `public`, is the URL's database: no database created or named.
    let dir = temp_dir().join("mysql-default");
    let out =
        pup(&["migrate", "generate", "--adapter", "mysql", "--output", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap();
    assert!(!sql.contains("CREATE DATABASE") && !sql.contains("`public`"));
    assert!(sql.contains("CREATE TABLE IF NOT EXISTS `events` ("));
}

/// The generated MySQL file, applied as a migration tool applies it (the whole file as one
/// multi-statement script, through sqlx) to a fresh database, is the schema `pup migrate
/// status` expects, and `pup append` and `pup status` work on it.
#[test]
fn a_generated_mysql_migration_applies_and_migrate_status_agrees() {
    use pupsourcing_mysql::sqlx::{self, Connection};
    let Some(db) = common::Db::mysql() else { return };
    let schema = db.schema.clone().unwrap();
    let dir = temp_dir().join(format!("mysql-{schema}"));
    let mut args = vec!["migrate", "generate", "--adapter", "mysql"];
    args.extend(["--output", dir.to_str().unwrap(), "--schema", &schema]);
    args.extend(MYSQL_TABLES);
    let out = pup(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = std::fs::read_to_string(dir.join("001_pupsourcing.sql")).unwrap();
    db.pup(&[&MYSQL_TABLES[..], &["migrate", "status"]].concat()).assert().code(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    });
    let status = db.ok(&[&MYSQL_TABLES[..], &["migrate", "status", "--json"]].concat());
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["applied"], true, "{status}");
    assert_eq!(status["location"], schema.as_str());
    assert_eq!(status["tables"].as_array().unwrap().len(), 12, "{status}");
    let out = db.ok(&[&MYSQL_TABLES[..], &["migrate", "apply"]].concat());
    assert!(out.contains("already applied"), "{out}");
    db.ok(&[&MYSQL_TABLES[..], &["append", "--type", "Booked", "--tag", "a:1"]].concat());
    let status = db.ok(&[&MYSQL_TABLES[..], &["status", "--json"]].concat());
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["head"], 1, "{status}");
}

/// `--mysql-client`: the file the `mysql` command-line client applies (a procedure would go
/// between DELIMITER lines; the schema has none now, so the plain file applies there too),
/// twice, after which `pup migrate status` says applied and appends work.
#[test]
fn a_mysql_client_script_applies_with_the_mysql_client() {
    use pupsourcing_mysql::sqlx::mysql::MySqlConnectOptions;
    let Some(db) = common::Db::mysql() else { return };
    let schema = db.schema.clone().unwrap();
    let generate = |dir: &str, extra: &[&str]| {
        let dir = temp_dir().join(format!("{dir}-{schema}"));
        let mut args = vec!["migrate", "generate", "--adapter", "mysql", "--schema", &schema];
        args.extend(["--output", dir.to_str().unwrap()]);
        args.extend(MYSQL_TABLES);
        args.extend(extra);
        let out = pup(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir.join("001_pupsourcing.sql")
    };
    let options: MySqlConnectOptions = db.url.parse().unwrap();
    // The password, if the URL has one (`mysql://USER:PASSWORD@HOST`), for MYSQL_PWD.
    let authority = db.url.split_once("://").map_or("", |(_, rest)| rest);
    let password = authority.split_once('@').and_then(|(user, _)| user.split_once(':'));
    let client = |file: &std::path::Path| {
        let mut command = Command::new("mysql");
        if let Some((_, password)) = password {
            command.env("MYSQL_PWD", password);
        }
        command
            .args(["-h", options.get_host(), "-P", &options.get_port().to_string()])
            .args(["-u", options.get_username()])
            .stdin(std::fs::File::open(file).unwrap());
        command.output()
    };
    let plain = generate("mysql-plain", &[]);
    let Ok(out) = client(&plain) else {
        eprintln!("SKIPPED: no `mysql` client on the PATH");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = generate("mysql-client", &["--mysql-client"]);
    for _ in 0..2 {
        let out = client(&script).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let status = db.ok(&[&MYSQL_TABLES[..], &["migrate", "status", "--json"]].concat());
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["applied"], true, "{status}");
    db.ok(&[&MYSQL_TABLES[..], &["append", "--type", "Booked"]].concat());
    // Only MySQL has a client script.
    let out = pup(&["migrate-gen", "--mysql-client", "--output", temp_dir().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--adapter mysql only"));
}
