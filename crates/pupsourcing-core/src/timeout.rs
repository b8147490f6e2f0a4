//! The configured time limits ([`crate::Timeouts`]) of calls on a store's own pool, shared by
//! every backend so that they mean the same thing everywhere.
//!
//! A limit covers everything up to COMMIT, never the COMMIT itself. Once COMMIT is sent, its
//! outcome is the call's outcome: a timer that fired while it is in flight could not take it
//! back, and an error returned then could be a lie (the events committed after all). So
//! [`crate::Error::Timeout`] always means that nothing was written, and a call can take longer
//! than its limit by the time its COMMIT takes.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// Runs `call`, failing with [`Error::Timeout`] when `limit` passes first. The call is dropped
/// then: use it only for reads, or for writes in a transaction that dropping rolls back.
pub async fn within<T>(
    limit: Option<Duration>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match limit {
        None => call.await,
        Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| Error::Timeout)?,
    }
}

/// Runs a write in a transaction of the store's own: `work` (which opens the transaction and
/// writes in it, returning the open transaction and its result) under `limit`, then `commit`
/// without a limit. A timed-out `work` is dropped with its transaction, which rolls it back.
pub async fn write_within<Tx, T, C, F>(
    limit: Option<Duration>,
    work: impl Future<Output = Result<(Tx, T)>>,
    commit: C,
) -> Result<T>
where
    C: FnOnce(Tx) -> F,
    F: Future<Output = Result<()>>,
{
    let (tx, value) = within(limit, work).await?;
    commit(tx).await?;
    Ok(value)
}
