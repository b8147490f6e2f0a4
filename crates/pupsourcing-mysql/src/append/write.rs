//! The write of an append (or of a group of appends) as text statements sent together in one
//! round trip ([`Script`]: a multi-statement `COM_QUERY`): the head rows, then per chunk the
//! counter statement taking the positions, the events and the tag index rows, and, when the
//! transaction is the store's own and nothing follows, the COMMIT. Values are literals
//! (`append/literal.rs`), so no statement needs the client between them.
//!
//! The server runs the statements in order and stops at the first that fails: the ones after it
//! never run. So a failure before the COMMIT leaves the transaction open (unless InnoDB ended it
//! to break a deadlock) with the earlier statements' writes in it, for the caller to inspect (a
//! replay?) and roll back; [`Failure::step`] says which statement failed. A failure of the
//! COMMIT itself, or one the server did not report (a lost connection), leaves the outcome
//! unknown.

use futures_util::TryStreamExt;
use pupsourcing_core::Version;
use sqlx::{AssertSqlSafe, Either, MySqlConnection};

use super::rows::Rows;
use crate::sql::{NOW, uncommented};

/// What a statement of a [`Script`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Opens the transaction (a statement of `store::BEGIN`) or takes boundary locks.
    Begin,
    /// Creates or moves head rows.
    Head,
    /// Takes positions from the counter.
    Counter,
    /// Inserts events.
    Events,
    /// Inserts tag index rows.
    Tags,
    /// Commits.
    Commit,
}

/// Statements to send in one round trip, each with its [`Step`].
#[derive(Debug, Default)]
pub(crate) struct Script {
    text: String,
    steps: Vec<Step>,
}

/// A [`Script`] that failed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The statement the server refused (none after it ran), or `None` when the error is not
    /// the server's answer to a statement (the connection was lost: anything may have run).
    pub(crate) step: Option<Step>,
    pub(crate) error: sqlx::Error,
}

impl Script {
    fn push(&mut self, step: Step, statement: &str) {
        if !self.text.is_empty() {
            self.text.push_str(";\n");
        }
        self.text.push_str(statement);
        self.steps.push(step);
    }

    /// Adds `begin`'s statements (`store::BEGIN`: statements separated by `;`, none holding
    /// one) and the boundary lock statements, for a write with nothing to decide before it.
    pub(crate) fn begin(&mut self, begin: &str, locks: Vec<String>) {
        for statement in begin.split(';').map(str::trim).chain(locks.iter().map(String::as_str)) {
            self.push(Step::Begin, statement);
        }
    }

    /// Adds the COMMIT.
    pub(crate) fn commit(&mut self) {
        self.push(Step::Commit, "COMMIT");
    }

    /// Runs the statements in one round trip and returns, for each counter statement, the
    /// last position it took (its OK packet's `last_insert_id`, which `LAST_INSERT_ID(expr)`
    /// sets).
    pub(crate) async fn run(self, conn: &mut MySqlConnection) -> Result<Vec<i64>, Failure> {
        let mut results = sqlx::raw_sql(AssertSqlSafe(self.text)).fetch_many(conn);
        let (mut done, mut lasts) = (0, Vec::new());
        loop {
            match results.try_next().await {
                // A statement's end (each ends with one, rows or not).
                Ok(Some(Either::Left(result))) => {
                    if self.steps.get(done) == Some(&Step::Counter) {
                        let last = i64::try_from(result.last_insert_id()).map_err(|_| Failure {
                            step: None,
                            error: sqlx::Error::Protocol("a position past i64::MAX".into()),
                        })?;
                        lasts.push(last);
                    }
                    done += 1;
                }
                Ok(Some(Either::Right(_))) => {}
                Ok(None) => break,
                Err(error) => {
                    let refused = error.as_database_error().is_some();
                    let step = refused.then(|| self.steps.get(done).copied()).flatten();
                    return Err(Failure { step, error });
                }
            }
        }
        if done != self.steps.len() {
            let error = sqlx::Error::Protocol(format!(
                "{done} statement results for {} statements",
                self.steps.len()
            ));
            return Err(Failure { step: None, error });
        }
        Ok(lasts)
    }
}

/// `text` rendered for `config` without its comment lines (see `sql::uncommented`).
pub(crate) fn template(text: &str, config: &pupsourcing_core::StoreConfig) -> String {
    uncommented(text, config)
}

/// The write statements, rendered for one store (placeholders for the literals left to fill).
#[derive(Debug, Clone)]
pub(crate) struct WriteSql {
    counter: String,
    events: String,
    tags: String,
    head_bump: String,
    head_insert: String,
    heads_create: String,
    heads_bump: String,
}

impl WriteSql {
    pub(crate) fn new(config: &pupsourcing_core::StoreConfig) -> Self {
        let render = |text: &str| template(text, config);
        Self {
            counter: render(include_str!("write_counter.sql")),
            events: render(include_str!("write_events.sql")),
            tags: render(include_str!("write_tags.sql")),
            head_bump: render(include_str!("write_head_bump.sql")),
            head_insert: render(include_str!("write_head_insert.sql")),
            heads_create: render(include_str!("group_heads_create.sql")),
            heads_bump: render(include_str!("group_heads_bump.sql")),
        }
    }

    /// Adds the statements writing `rows`: the counter (taking `rows.count` positions), the
    /// events, their tag index rows.
    pub(crate) fn rows(&self, script: &mut Script, rows: &Rows) {
        script.push(Step::Counter, &self.counter.replace("{count}", &rows.count.to_string()));
        script.push(Step::Events, &self.events.replace("{rows}", &rows.events));
        if !rows.tags.is_empty() {
            script.push(Step::Tags, &self.tags.replace("{rows}", &rows.tags));
        }
    }

    /// Adds the move of a locked stream head (`kind`, `id`: its literals) to `version`.
    pub(crate) fn head_bump(&self, script: &mut Script, kind: &str, id: &str, version: Version) {
        let statement = self
            .head_bump
            .replace("{version}", &version.to_string())
            .replace("{type}", kind)
            .replace("{id}", id);
        script.push(Step::Head, &statement);
    }

    /// Adds the creation of a new stream's head row (`stream`: its literals) at `version`.
    pub(crate) fn head_insert(&self, script: &mut Script, stream: &str, version: Version) {
        let statement =
            self.head_insert.replace("{version}", &version.to_string()).replace("{stream}", stream);
        script.push(Step::Head, &statement);
    }

    /// Adds a group's head rows, each `(stream literals, new version)`, in key order: `create`
    /// the new ones, `bump` the locked ones.
    pub(crate) fn group_heads(
        &self,
        script: &mut Script,
        create: &[(String, Version)],
        bump: &[(String, Version)],
    ) {
        let rows = |heads: &[(String, Version)]| {
            let rows: Vec<String> = heads
                .iter()
                .map(|(stream, version)| format!("({stream},{version},{NOW})"))
                .collect();
            rows.join(",")
        };
        if !create.is_empty() {
            script.push(Step::Head, &self.heads_create.replace("{rows}", &rows(create)));
        }
        if !bump.is_empty() {
            script.push(Step::Head, &self.heads_bump.replace("{rows}", &rows(bump)));
        }
    }
}
