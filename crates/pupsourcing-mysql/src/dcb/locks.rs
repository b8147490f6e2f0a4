//! The DCB boundary locks on InnoDB: one row per lock key of core's lock plan
//! ([`pupsourcing_core::dcb::lock_plan`]), taken with shared (`LOCK IN SHARE MODE`) or exclusive
//! (`FOR UPDATE`) row locks in ascending key order, held until the transaction ends.
//!
//! Row locks need rows. A row inserted by the append itself would be locked exclusively until
//! its commit (making every shared key exclusive the first time), so missing rows are created
//! beforehand in autocommit statements: on the append's own connection before its transaction
//! begins, or, for an append in a caller's transaction, on a connection of the store's side
//! pool (never the main pool, which transactions waiting for it may have exhausted). The keys
//! known to exist are remembered, so this costs a round trip only for keys new to the process. Under READ COMMITTED InnoDB takes no gap locks for
//! these point lookups: only the rows themselves are locked.

use std::collections::HashSet;
use std::sync::Mutex;

use pupsourcing_core::Result;
use pupsourcing_core::dcb::LockKey;
use sqlx::{AssertSqlSafe, MySqlConnection, MySqlPool};

use crate::error::{DEADLOCK, db, number};
use crate::sql::{Statement, repeated};

/// Most keys remembered as existing before the memory is cleared (it only saves a read).
const KNOWN_KEYS: usize = 100_000;

/// The lock statements of one store and the keys known to have their row.
#[derive(Debug)]
pub(crate) struct Locks {
    existing: Statement,
    create: Statement,
    take: Statement,
    known: Mutex<HashSet<i64>>,
}

impl Locks {
    pub(crate) fn new(config: &pupsourcing_core::StoreConfig) -> Self {
        Self {
            existing: Statement::new(include_str!("locks_existing.sql"), config),
            create: Statement::new(include_str!("locks_create.sql"), config),
            // Sent as text with every append: without its comment lines.
            take: Statement::uncommented(include_str!("locks_take.sql"), config),
            known: Mutex::new(HashSet::new()),
        }
    }

    /// Takes `plan` (sorted by key, each key once) on `conn`, inside its transaction, whose
    /// rows [`Locks::ensure_rows`] created: the [`Locks::statements`], one round trip each.
    pub(crate) async fn take(&self, conn: &mut MySqlConnection, plan: &[LockKey]) -> Result<()> {
        for statement in self.statements(plan) {
            sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut *conn).await.map_err(db)?;
        }
        Ok(())
    }

    /// The statements taking `plan` (sorted by key, each key once): one per run of keys of one
    /// mode, in key order, the keys as integer literals (text statements, so that an append of
    /// the store's own sends them with its BEGIN in one round trip, see `append`).
    pub(crate) fn statements(&self, plan: &[LockKey]) -> Vec<String> {
        plan.chunk_by(|a, b| a.exclusive == b.exclusive)
            .map(|run| {
                let mode = if run[0].exclusive { "FOR UPDATE" } else { "LOCK IN SHARE MODE" };
                let keys: Vec<String> = run.iter().map(|k| k.key.to_string()).collect();
                format!("{} ({}) ORDER BY lock_key {mode}", self.take.text(), keys.join(", "))
            })
            .collect()
    }

    /// Creates the rows of the keys not known to exist, in autocommit statements on `conn`
    /// (which must not be in a transaction), or on a connection of `side` when `conn` is
    /// `None`.
    pub(crate) async fn ensure_rows(
        &self,
        conn: Option<&mut MySqlConnection>,
        side: &MySqlPool,
        plan: &[LockKey],
    ) -> Result<()> {
        let unknown: Vec<i64> = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            plan.iter().map(|k| k.key).filter(|k| !known.contains(k)).collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let mut pooled;
        let conn = match conn {
            Some(conn) => conn,
            None => {
                pooled = side.acquire().await.map_err(db)?;
                &mut *pooled
            }
        };
        // A plain read first: INSERT IGNORE on an existing row would wait for its lockers.
        let text = format!("{} ({})", self.existing.text(), repeated("?", unknown.len()));
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(text));
        for key in &unknown {
            query = query.bind(*key);
        }
        let existing: HashSet<i64> =
            query.fetch_all(&mut *conn).await.map_err(db)?.into_iter().collect();
        let missing: Vec<i64> = unknown.iter().copied().filter(|k| !existing.contains(k)).collect();
        if !missing.is_empty() {
            let text = format!("{} {}", self.create.text(), repeated("(?)", missing.len()));
            // Two such inserts racing on the same new keys can deadlock on InnoDB's gap locks
            // (each statement is its own transaction, holding nothing else): run it again.
            let mut attempts = 0;
            loop {
                let mut query = sqlx::query(AssertSqlSafe(text.as_str()));
                for key in &missing {
                    query = query.bind(*key);
                }
                match query.execute(&mut *conn).await {
                    Err(err) if number(&err) == Some(DEADLOCK) && attempts < 5 => attempts += 1,
                    other => break other.map(drop).map_err(db)?,
                }
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() + unknown.len() > KNOWN_KEYS {
            known.clear();
        }
        known.extend(unknown);
        Ok(())
    }
}
