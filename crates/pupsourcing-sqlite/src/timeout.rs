//! The configured time limits of calls on the store's own pool.

use std::future::Future;
use std::time::Duration;

use pupsourcing_core::{Error, Result};

/// Runs `call`, failing with [`Error::Timeout`] when `limit` passes first. Dropping the call
/// drops its transaction, which rolls it back.
pub(crate) async fn limited<T>(
    limit: Option<Duration>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match limit {
        None => call.await,
        Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| Error::Timeout)?,
    }
}
