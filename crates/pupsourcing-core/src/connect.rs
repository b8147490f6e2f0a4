//! [`ConnectOptions`]: the pool settings of a backend's `connect_with`; [`ConnectError`]: why
//! it could not connect.

use std::time::Duration;

use crate::error::Error;

/// Pool settings for a backend's `connect_with` (`connect` uses the defaults).
///
/// ```
/// use std::time::Duration;
/// use pupsourcing_core::ConnectOptions;
/// let options = ConnectOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(2));
/// assert_eq!(options.max_connections, 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Most connections the store's pool opens (at least 1). Default 16 on PostgreSQL; on
    /// SQLite the read pool's size (the write pool always has one connection). A PostgreSQL
    /// store opens up to two more for group commit, outside this pool; a MySQL store up to two
    /// for creating lock and head rows beside appends in callers' transactions.
    pub max_connections: u32,
    /// How long a call waits for a free connection of the pool before failing with
    /// [`crate::Error::Timeout`]. Default 30 s.
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(30) }
    }
}

impl ConnectOptions {
    /// The defaults: 16 connections, a 30 s acquire timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the pool's size (values below 1 count as 1).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Sets how long a call waits for a free connection.
    pub fn acquire_timeout(mut self, limit: Duration) -> Self {
        self.acquire_timeout = limit;
        self
    }
}

/// A backend's `connect_with` could not open its first connection (a wrong URL, an unreachable
/// server, refused credentials): says which database and where, with the driver's error (and
/// through it the I/O error) as source. Carried by [`Error::Database`], at once rather than
/// after the pool's acquire timeout.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {database} at {host}:{port}: {source}")]
pub struct ConnectError {
    /// The database product, as users name it (`PostgreSQL`, `MySQL`).
    pub database: &'static str,
    /// The host connected to.
    pub host: String,
    /// The port connected to.
    pub port: u16,
    /// The driver's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ConnectError {
    /// The [`Error::Database`] reporting that `database` at `host`:`port` refused or could
    /// not be reached, for `source`.
    ///
    /// ```
    /// use pupsourcing_core::ConnectError;
    /// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// let err = ConnectError::error("PostgreSQL", "127.0.0.1", 1, refused);
    /// assert!(err.to_string().starts_with("database error: cannot connect to PostgreSQL at 127.0.0.1:1: "));
    /// ```
    pub fn error(
        database: &'static str,
        host: &str,
        port: u16,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        let source = Box::new(source);
        Error::database(ConnectError { database, host: host.to_string(), port, source })
    }
}
