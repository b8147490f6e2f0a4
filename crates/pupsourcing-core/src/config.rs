//! Store configuration: where the tables live and the limits on input.

use std::time::Duration;

use crate::error::ValidationError;
use crate::identifier::Identifier;
use crate::validate::Limits;

/// The names of the store's tables. Every name is a validated [`Identifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// The global log (default `events`).
    pub events: Identifier,
    /// One row per aggregate stream holding its current version (default `aggregate_heads`).
    pub aggregate_heads: Identifier,
    /// Commands recorded by the DCB command executor (default `commands`).
    pub commands: Identifier,
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            events: Identifier::new("events").expect("valid literal"),
            aggregate_heads: Identifier::new("aggregate_heads").expect("valid literal"),
            commands: Identifier::new("commands").expect("valid literal"),
        }
    }
}

/// Configuration shared by every backend.
///
/// ```
/// use pupsourcing_core::StoreConfig;
/// let config = StoreConfig::default().schema("billing").unwrap().events_table("billing_events").unwrap();
/// assert_eq!(config.tables.events.as_str(), "billing_events");
/// assert!(StoreConfig::default().schema("no such schema").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Schema holding the tables (PostgreSQL; ignored by SQLite). Default `public`.
    pub schema: Identifier,
    /// Table names.
    pub tables: TableNames,
    /// Limits applied to every append before it reaches the database.
    pub limits: Limits,
    /// Time limits of calls the store runs on its own pool (none by default).
    pub timeouts: Timeouts,
}

/// Time limits for store calls that use the store's own pool and transactions. A call that
/// takes longer fails with [`crate::Error::Timeout`] and its transaction is rolled back. Calls in
/// a caller's transaction (`*_in`) are not limited: the caller owns that transaction's time.
///
/// An append's limit covers everything before its COMMIT, never the COMMIT itself: once COMMIT
/// is sent, the append waits for its outcome, so [`crate::Error::Timeout`] always means that
/// nothing was written (an append can take longer than its limit by the time its COMMIT
/// takes). The query limit only wraps reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Limit of `append` and `append_if`.
    pub append: Option<Duration>,
    /// Limit of reads (`read_all`, `read_stream`, `read`, `head`, ...).
    pub query: Option<Duration>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            schema: Identifier::new("public").expect("valid literal"),
            tables: TableNames::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
        }
    }
}

impl StoreConfig {
    /// Sets the schema, validating the name.
    pub fn schema(mut self, name: &str) -> Result<Self, ValidationError> {
        self.schema = Identifier::new(name)?;
        Ok(self)
    }

    /// Sets the events table name, validating it.
    pub fn events_table(mut self, name: &str) -> Result<Self, ValidationError> {
        self.tables.events = Identifier::new(name)?;
        Ok(self)
    }

    /// Sets the aggregate heads table name, validating it.
    pub fn aggregate_heads_table(mut self, name: &str) -> Result<Self, ValidationError> {
        self.tables.aggregate_heads = Identifier::new(name)?;
        Ok(self)
    }

    /// Sets the commands table name, validating it.
    pub fn commands_table(mut self, name: &str) -> Result<Self, ValidationError> {
        self.tables.commands = Identifier::new(name)?;
        Ok(self)
    }

    /// Sets the time limit of appends in the store's own transactions.
    pub fn append_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.append = Some(limit);
        self
    }

    /// Sets the time limit of reads on the store's pool.
    pub fn query_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.query = Some(limit);
        self
    }

    /// Sets the largest batch one append accepts.
    pub fn max_batch_size(mut self, max: usize) -> Self {
        self.limits.max_batch_size = max;
        self
    }
}
