//! What holds the gap-free head back: the transaction holding the counter row's lock.
//!
//! First a locking read that skips a locked row (`stall.sql`): a row back means nothing holds
//! the counter, and the head is current. Otherwise a second connection asks for the row's lock
//! (`stall_wait.sql`) and, while it waits, InnoDB's lock waits name the holder
//! (`stall_holder.sql`). MariaDB (like MySQL 5.7) lists locks only when someone waits for them:
//! there is no view of the locks a transaction holds (MySQL 8's
//! `performance_schema.data_locks` has it; MariaDB has not), so the wait is how the holder is
//! found. The waiting request is killed (`KILL QUERY`) as soon as the holder is named; while
//! it waits, appends queue behind it (InnoDB grants lock requests in order), so the probe lasts
//! at most [`PROBE`] (a few [`POLL`]s: usually one).
//!
//! When the holder cannot be named (its transaction ended meanwhile: then `None`; or the views
//! need the PROCESS privilege, or are MySQL 8's, which has moved them to `performance_schema`)
//! the stall is reported with the head only.

use std::time::Duration;

use pupsourcing_core::projection::Stall;
use pupsourcing_core::{Position, Result, StoreConfig};
use sqlx::Row;

use crate::MySqlEventStore;
use crate::error::db;
use crate::read;
use crate::sql::Statement;

/// How long the waiting request may wait for the holder to show.
const PROBE: Duration = Duration::from_millis(1000);
/// How often the lock waits are read meanwhile: InnoDB refreshes the cache behind its
/// `information_schema` views only when they were not read for 0.1 s, so reading them more
/// often would keep showing the cache of before the wait.
const POLL: Duration = Duration::from_millis(150);

#[derive(Debug, Clone)]
pub(crate) struct StallSql {
    locked: Statement,
    wait: Statement,
    holder: Statement,
}

impl StallSql {
    pub(crate) fn new(config: &StoreConfig) -> Self {
        Self {
            locked: Statement::new(include_str!("stall.sql"), config),
            wait: Statement::new(include_str!("stall_wait.sql"), config),
            holder: Statement::new(include_str!("stall_holder.sql"), config),
        }
    }
}

/// The holder as `stall_holder.sql` names it.
type Holder = (i64, Option<i64>, Option<String>);

pub(crate) async fn stall(store: &MySqlEventStore) -> Result<Option<Stall>> {
    let sql = &store.checkpoint_sql().stall;
    let mut observer = store.pool().acquire().await.map_err(db)?;
    let free = sqlx::query(sql.locked.sql()).fetch_optional(&mut *observer).await.map_err(db)?;
    if free.is_some() {
        return Ok(None);
    }
    let head: Position = read::head(&mut *observer, store.read_sql()).await?;
    let mut waiter = store.pool().acquire().await.map_err(db)?;
    let waiter_id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
        .fetch_one(&mut *waiter)
        .await
        .map_err(db)?;
    let wait_sql = sql.wait.sql();
    let mut wait = Box::pin(async move {
        let _ = sqlx::query(wait_sql).fetch_optional(&mut *waiter).await;
    });
    let started = std::time::Instant::now();
    let mut holder: Option<Holder> = None;
    let mut readable = true;
    let granted = loop {
        tokio::select! {
            () = &mut wait => break true,
            () = tokio::time::sleep(POLL) => {}
        }
        match named_holder(&mut observer, &sql.holder, waiter_id).await {
            Ok(Some(found)) => {
                holder = Some(found);
                break false;
            }
            Ok(None) => {}
            Err(_) => {
                readable = false;
                break false;
            }
        }
        if started.elapsed() > PROBE {
            break false;
        }
    };
    if !granted {
        let kill = format!("KILL QUERY {waiter_id}");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(kill)).execute(&mut *observer).await;
        wait.await;
    }
    Ok(match holder {
        Some((session, age, user)) => Some(Stall {
            position: head,
            session: Some(session),
            transaction_age: age.map(|micros| Duration::from_micros(micros.max(0) as u64)),
            application_name: user,
        }),
        // The holder ended before it could be named: nothing holds the head now.
        None if granted && readable => None,
        None => Some(Stall {
            position: head,
            session: None,
            transaction_age: None,
            application_name: None,
        }),
    })
}

async fn named_holder(
    conn: &mut sqlx::MySqlConnection,
    holder: &Statement,
    waiter: i64,
) -> std::result::Result<Option<Holder>, sqlx::Error> {
    let row = sqlx::query(holder.sql()).bind(waiter).fetch_optional(&mut *conn).await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).transpose()
}
