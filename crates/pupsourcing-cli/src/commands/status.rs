//! `pup status`: every projection partition and orchestrator shard with its checkpoint, the
//! head, lag, state, last error and dead letters; the workers; and the write in flight holding
//! the head back, if any. All of it from `pupsourcing_projection::status` and
//! `pupsourcing_orchestrator::status`.

use clap::Args;
use pupsourcing_core::projection::Stall;
use pupsourcing_orchestrator::{OrchestratorStatus, ShardState};
use pupsourcing_projection::{PartitionState, ProjectionStatus};
use serde_json::{Value, json};

use crate::backend::{Backend, OnStore};
use crate::error::{CliError, UNHEALTHY};
use crate::output::{Table, or_dash, seconds, seconds_json, timestamp};

/// Where every projection, worker and shard stands.
///
/// Lag counts every event of a partition after its checkpoint: the CLI does not have the
/// projections' code, so it does not know their scopes (a scoped projection's lag may be
/// over-counted while it is behind; it is 0 once caught up).
#[derive(Args)]
pub struct Status {
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Health check: exit with code 3 when a projection partition or shard failed, or lags
    /// past --max-lag / --max-lag-seconds.
    #[arg(long)]
    check: bool,
    /// With --check: the most events a partition or shard may lag behind.
    #[arg(long, value_name = "EVENTS")]
    max_lag: Option<u64>,
    /// With --check: the oldest unhandled event may be at most this many seconds old.
    #[arg(long, value_name = "SECONDS")]
    max_lag_seconds: Option<f64>,
}

impl OnStore for Status {
    async fn run<B: Backend>(self, store: &B) -> Result<(), CliError> {
        let head = store.head().await?;
        let projections = pupsourcing_projection::status(store, &[]).await?;
        let pool = pupsourcing_orchestrator::status(store, &[]).await?;
        let problems = if self.check || self.max_lag.is_some() || self.max_lag_seconds.is_some() {
            Some(self.problems(&projections, &pool))
        } else {
            None
        };
        if self.json {
            println!("{}", json_report(head, &projections, &pool, problems.as_deref()));
        } else {
            print!("{}", text_report(head, &projections, &pool));
        }
        match problems {
            Some(problems) if !problems.is_empty() => {
                Err(CliError::new(format!("unhealthy: {}", problems.join("; "))).code(UNHEALTHY))
            }
            Some(_) if !self.json => {
                println!("healthy");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl Status {
    /// What fails the health check, one line each.
    fn problems(&self, projections: &[ProjectionStatus], pool: &OrchestratorStatus) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |what: String, failed: bool, lag: u64, age: Option<f64>| {
            if failed {
                problems.push(format!("{what} failed"));
            }
            if let Some(max) = self.max_lag.filter(|max| lag > *max) {
                problems.push(format!("{what} lags {lag} events (max {max})"));
            }
            if let (Some(max), Some(age)) = (self.max_lag_seconds, age)
                && age > max
            {
                problems.push(format!("{what} lags {age:.1} s (max {max} s)"));
            }
        };
        for p in projections {
            let what = format!("projection {} partition {}", p.projection, p.partition);
            let failed = p.state == PartitionState::Failed;
            check(what, failed, p.lag_events, p.lag.map(|d| d.as_secs_f64()));
        }
        for s in &pool.shards {
            let what = format!(
                "projection {} shard {}/{}",
                s.shard.projection, s.shard.shard, s.shard.count
            );
            let failed = s.state == ShardState::Failed;
            check(what, failed, s.lag_events, s.lag.map(|d| d.as_secs_f64()));
        }
        problems
    }
}

fn partition_state(state: PartitionState) -> &'static str {
    match state {
        PartitionState::Idle => "idle",
        PartitionState::Behind => "behind",
        PartitionState::Failed => "failed",
    }
}

fn shard_state(state: ShardState) -> &'static str {
    match state {
        ShardState::Unowned => "unowned",
        ShardState::Idle => "idle",
        ShardState::Behind => "behind",
        ShardState::Failed => "failed",
    }
}

fn stall_text(stall: &Stall) -> String {
    let mut text = format!(
        "stalled: the head stops at position {} until a write in flight ends",
        stall.position
    );
    let mut who = Vec::new();
    if let Some(session) = stall.session {
        who.push(format!("session {session}"));
    }
    if let Some(age) = stall.transaction_age {
        who.push(format!("transaction open {}", seconds(age)));
    }
    if let Some(name) = stall.application_name.as_deref().filter(|n| !n.is_empty()) {
        who.push(format!("application {name:?}"));
    }
    if !who.is_empty() {
        text.push_str(&format!(" ({})", who.join(", ")));
    }
    text
}

fn text_report(head: i64, projections: &[ProjectionStatus], pool: &OrchestratorStatus) -> String {
    let mut out = format!("head: {head}\n");
    if let Some(stall) = projections.first().and_then(|p| p.stall.as_ref()).or(pool.stall.as_ref())
    {
        out.push_str(&format!("{}\n", stall_text(stall)));
    }
    out.push_str("\nprojections:\n");
    let mut table = Table::new(&[
        "PROJECTION",
        "PARTITION",
        "CHECKPOINT",
        "HEAD",
        "LAG",
        "LAG AGE",
        "STATE",
        "DEAD LETTERS",
        "UPDATED",
        "LAST ERROR",
    ]);
    for p in projections {
        table.row(vec![
            p.projection.clone(),
            p.partition.to_string(),
            p.checkpoint.to_string(),
            p.head.to_string(),
            p.lag_events.to_string(),
            or_dash(p.lag.map(seconds)),
            partition_state(p.state).to_string(),
            p.dead_letters.to_string(),
            timestamp(p.updated_at),
            or_dash(p.last_error.as_deref()),
        ]);
    }
    out.push_str(&if table.is_empty() { "(no checkpoints)\n".into() } else { table.render() });
    out.push_str(&format!(
        "\norchestrator: generation {} ({})\n",
        pool.generation.number,
        pool.generation.phase.as_str()
    ));
    let mut workers = Table::new(&["WORKER", "GENERATION", "STATE", "HEARTBEAT AGE", "STARTED"]);
    for w in &pool.workers {
        workers.row(vec![
            w.id.clone(),
            w.generation.to_string(),
            w.state.as_str().to_string(),
            seconds(w.heartbeat_age),
            timestamp(w.started_at),
        ]);
    }
    out.push_str(&if workers.is_empty() { "(no workers)\n".into() } else { workers.render() });
    let mut shards = Table::new(&[
        "PROJECTION",
        "SHARD",
        "OWNER",
        "EPOCH",
        "CHECKPOINT",
        "HEAD",
        "LAG",
        "LAG AGE",
        "STATE",
        "LAST ERROR",
    ]);
    for s in &pool.shards {
        shards.row(vec![
            s.shard.projection.clone(),
            format!("{}/{}", s.shard.shard, s.shard.count),
            or_dash(s.owner.as_deref()),
            s.epoch.to_string(),
            s.checkpoint.to_string(),
            s.head.to_string(),
            s.lag_events.to_string(),
            or_dash(s.lag.map(seconds)),
            shard_state(s.state).to_string(),
            or_dash(s.last_error.as_deref()),
        ]);
    }
    if !shards.is_empty() {
        out.push('\n');
        out.push_str(&shards.render());
    }
    out
}

fn stall_json(stall: Option<&Stall>) -> Value {
    stall.map_or(Value::Null, |s| {
        json!({
            "position": s.position,
            "session": s.session,
            "transaction_age_seconds": seconds_json(s.transaction_age),
            "application_name": s.application_name,
        })
    })
}

fn json_report(
    head: i64,
    projections: &[ProjectionStatus],
    pool: &OrchestratorStatus,
    problems: Option<&[String]>,
) -> Value {
    let stall = projections.first().and_then(|p| p.stall.as_ref()).or(pool.stall.as_ref());
    let projections: Vec<Value> = projections
        .iter()
        .map(|p| {
            json!({
                "projection": p.projection,
                "partition": { "key": p.partition.key(), "count": p.partition.count() },
                "checkpoint": p.checkpoint,
                "head": p.head,
                "lag_events": p.lag_events,
                "lag_seconds": seconds_json(p.lag),
                "state": partition_state(p.state),
                "last_error": p.last_error,
                "dead_letters": p.dead_letters,
                "updated_at": timestamp(p.updated_at),
            })
        })
        .collect();
    let workers: Vec<Value> = pool
        .workers
        .iter()
        .map(|w| {
            json!({
                "id": w.id,
                "generation": w.generation,
                "state": w.state.as_str(),
                "heartbeat_age_seconds": w.heartbeat_age.as_secs_f64(),
                "started_at": timestamp(w.started_at),
            })
        })
        .collect();
    let shards: Vec<Value> = pool
        .shards
        .iter()
        .map(|s| {
            json!({
                "projection": s.shard.projection,
                "shard": s.shard.shard,
                "count": s.shard.count,
                "owner": s.owner,
                "epoch": s.epoch,
                "checkpoint": s.checkpoint,
                "head": s.head,
                "lag_events": s.lag_events,
                "lag_seconds": seconds_json(s.lag),
                "state": shard_state(s.state),
                "last_error": s.last_error,
                "updated_at": timestamp(s.updated_at),
            })
        })
        .collect();
    let mut report = json!({
        "head": head,
        "stall": stall_json(stall),
        "projections": projections,
        "generation": { "number": pool.generation.number, "phase": pool.generation.phase.as_str() },
        "workers": workers,
        "shards": shards,
    });
    if let Some(problems) = problems {
        report["healthy"] = json!(problems.is_empty());
        report["problems"] = json!(problems);
    }
    report
}
