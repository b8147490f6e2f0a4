//! Store configuration: where the tables live and the limits on input.

use std::time::Duration;

use crate::error::ValidationError;
use crate::identifier::Identifier;
use crate::validate::Limits;

/// The names of the store's tables. Every name is a validated [`Identifier`].
///
/// The heads and commands tables belong to one events table: two stores sharing a heads table
/// would see each other's streams (one store's `NoStream` failing on the other's stream). So
/// unless set explicitly, they are named after the events table: `aggregate_heads` and
/// `commands` for the default `events`, `<events>_heads` and `<events>_commands` otherwise
/// (see [`StoreConfig::events_table`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// The global log (default `events`). At most [`TableNames::MAX_EVENTS_LEN`] bytes, so that
    /// every name derived from it fits the 63 bytes PostgreSQL keeps.
    pub events: Identifier,
    /// One row per aggregate stream holding its current version (default `aggregate_heads`, or
    /// `<events>_heads` for another events table).
    pub aggregate_heads: Identifier,
    /// Commands recorded by the DCB command executor (default `commands`, or `<events>_commands`
    /// for another events table).
    pub commands: Identifier,
    /// Projection checkpoints, one row per projection partition (default
    /// `projection_checkpoints`, or `<events>_checkpoints` for another events table).
    pub checkpoints: Identifier,
    /// Events projections set aside (default `projection_dead_letters`, or
    /// `<events>_dead_letters` for another events table).
    pub dead_letters: Identifier,
    /// Orchestrator workers and their heartbeats (default `workers`, or `<events>_workers`).
    pub workers: Identifier,
    /// Orchestrator shards: owner, epoch and checkpoint (default `projection_shards`, or
    /// `<events>_shards`).
    pub shards: Identifier,
    /// The Recreate generation, one row (default `recreate_lock`, or `<events>_recreate_lock`).
    pub recreate_lock: Identifier,
}

impl Default for TableNames {
    fn default() -> Self {
        Self::for_events(Identifier::new("events").expect("valid literal")).expect("short literal")
    }
}

impl TableNames {
    /// Suffixes that backends append to the events table's name to name its sequence, tag
    /// index, constraints, indexes and functions, and the default heads and commands tables.
    /// Every backend test checks that its templates use no other suffix.
    pub const DERIVED_SUFFIXES: &'static [&'static str] = &[
        // PostgreSQL
        "_position_seq",
        "_stream_all_or_none",
        "_stream_version",
        "_type_position",
        "_tags",
        "_append",
        "_bump_head",
        "_unbump_head",
        "_stored",
        "_condition_matches",
        "_allocate",
        "_safe_head",
        "_query_head",
        "_tags_by_event",
        // SQLite
        "_event_type_idx",
        // MySQL
        "_locks",
        "_counter",
        "_write",
        "_write_rows", // no longer created; older stores keep it, unused
        // default heads, commands, checkpoints and dead letters tables
        "_heads",
        "_commands",
        "_checkpoints",
        "_dead_letters",
        "_workers",
        "_shards",
        "_recreate_lock",
    ];

    /// The longest events table name: 63 bytes (PostgreSQL truncates longer names, so two
    /// derived names could become one) minus the longest derived suffix. The same on every
    /// backend, so a configuration means the same thing everywhere.
    pub const MAX_EVENTS_LEN: usize = Identifier::MAX_LEN - longest(Self::DERIVED_SUFFIXES);

    /// Suffixes that backends append to the workers table's name: MySQL's worker lock rows
    /// (`<workers>_locks`, one row per workers row) and their foreign key. Named after the
    /// workers table, not the events table, because they belong to its rows: two orchestrator
    /// pools on one events table, each with a workers table of its own, each have their own.
    pub const WORKERS_DERIVED_SUFFIXES: &'static [&'static str] = &["_locks", "_locks_fk"];

    /// The longest workers table name: 63 bytes minus the longest suffix derived from it (the
    /// same on every backend, as [`TableNames::MAX_EVENTS_LEN`]). The default workers table
    /// of the longest events table (`<events>_workers`) is shorter.
    pub const MAX_WORKERS_LEN: usize =
        Identifier::MAX_LEN - longest(Self::WORKERS_DERIVED_SUFFIXES);

    /// The names for `events` with every other table named after it (`<events>_heads`, ...;
    /// the plain names `aggregate_heads`, `commands`, ... for `events`). Fails when
    /// `events` is longer than [`TableNames::MAX_EVENTS_LEN`].
    pub fn for_events(events: Identifier) -> Result<Self, ValidationError> {
        check_events_len(&events)?;
        let derived = |suffix: &str, default: &str| {
            let name = if events.as_str() == "events" {
                default.to_string()
            } else {
                format!("{events}{suffix}")
            };
            Identifier::new(name).expect("a valid name plus a suffix within MAX_LEN")
        };
        Ok(Self {
            aggregate_heads: derived("_heads", "aggregate_heads"),
            commands: derived("_commands", "commands"),
            checkpoints: derived("_checkpoints", "projection_checkpoints"),
            dead_letters: derived("_dead_letters", "projection_dead_letters"),
            workers: derived("_workers", "workers"),
            shards: derived("_shards", "projection_shards"),
            recreate_lock: derived("_recreate_lock", "recreate_lock"),
            events,
        })
    }

    /// Checks that no name the store creates is truncated or taken twice: the events table is
    /// at most [`TableNames::MAX_EVENTS_LEN`] bytes and the workers table at most
    /// [`TableNames::MAX_WORKERS_LEN`], and the tables have distinct names, none equal to a
    /// name derived from the events table or the workers table.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_events_len(&self.events)?;
        self.check_workers_names()?;
        let events = self.events.as_str();
        let own_suffixes = [
            "_heads",
            "_commands",
            "_checkpoints",
            "_dead_letters",
            "_workers",
            "_shards",
            "_recreate_lock",
        ];
        let taken = |name: &Identifier| {
            name == &self.events
                || Self::DERIVED_SUFFIXES
                    .iter()
                    .filter(|suffix| !own_suffixes.contains(suffix))
                    .any(|suffix| name.as_str() == format!("{events}{suffix}"))
        };
        let tables = self.others();
        for (what, name) in tables {
            if taken(name) {
                return Err(ValidationError::TableNames {
                    reason: format!(
                        "the {what} table {name:?} is the events table or a name derived from it"
                    ),
                });
            }
        }
        for (i, (what, name)) in tables.iter().enumerate() {
            if let Some((other, _)) = tables[i + 1..].iter().find(|(_, n)| n == name) {
                return Err(ValidationError::TableNames {
                    reason: format!("the {what} and {other} tables are both {:?}", name.as_str()),
                });
            }
        }
        Ok(())
    }

    /// The workers table leaves room for the names derived from it, and none of those is
    /// another table or a name derived from the events table.
    fn check_workers_names(&self) -> Result<(), ValidationError> {
        let workers = self.workers.as_str();
        if workers.len() > Self::MAX_WORKERS_LEN {
            return Err(ValidationError::TableNames {
                reason: format!(
                    "the workers table name {workers:?} has {} bytes; at most {} are allowed, \
                     so that names derived from it (\"{workers}_locks_fk\", ...) fit in 63 bytes",
                    workers.len(),
                    Self::MAX_WORKERS_LEN
                ),
            });
        }
        let events = self.events.as_str();
        for suffix in Self::WORKERS_DERIVED_SUFFIXES {
            let derived = format!("{workers}{suffix}");
            let table = self.all().into_iter().find(|(_, name)| name.as_str() == derived);
            let clash = match table {
                Some((what, _)) => format!("the {what} table"),
                None if Self::DERIVED_SUFFIXES
                    .iter()
                    .any(|s| derived == format!("{events}{s}")) =>
                {
                    "a name derived from the events table".to_string()
                }
                None => continue,
            };
            return Err(ValidationError::TableNames {
                reason: format!(
                    "{derived:?}, named after the workers table, is {clash}: name the workers \
                     table otherwise"
                ),
            });
        }
        Ok(())
    }

    /// Accessors of the tables named after the events table by default.
    const OTHERS: [fn(&mut TableNames) -> &mut Identifier; 7] = [
        |t| &mut t.aggregate_heads,
        |t| &mut t.commands,
        |t| &mut t.checkpoints,
        |t| &mut t.dead_letters,
        |t| &mut t.workers,
        |t| &mut t.shards,
        |t| &mut t.recreate_lock,
    ];

    /// Every table with what it holds, the events table first: what a migration creates.
    pub fn all(&self) -> [(&'static str, &Identifier); 8] {
        let [a, b, c, d, e, f, g] = self.others();
        [("events", &self.events), a, b, c, d, e, f, g]
    }

    /// The tables besides the events table, with what each holds.
    fn others(&self) -> [(&'static str, &Identifier); 7] {
        [
            ("aggregate heads", &self.aggregate_heads),
            ("commands", &self.commands),
            ("checkpoints", &self.checkpoints),
            ("dead letters", &self.dead_letters),
            ("workers", &self.workers),
            ("shards", &self.shards),
            ("recreate lock", &self.recreate_lock),
        ]
    }
}

/// Fails when names derived from `events` would exceed the 63 bytes PostgreSQL keeps.
fn check_events_len(events: &Identifier) -> Result<(), ValidationError> {
    let len = events.as_str().len();
    if len <= TableNames::MAX_EVENTS_LEN {
        return Ok(());
    }
    Err(ValidationError::TableNames {
        reason: format!(
            "the events table name {:?} has {len} bytes; at most {} are allowed, so that names \
             derived from it (\"{events}_stream_all_or_none\", ...) fit in 63 bytes",
            events.as_str(),
            TableNames::MAX_EVENTS_LEN
        ),
    })
}

/// The length of the longest of `words`.
const fn longest(words: &[&str]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < words.len() {
        if words[i].len() > max {
            max = words[i].len();
        }
        i += 1;
    }
    max
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

    /// Sets the events table name, validating it (at most [`TableNames::MAX_EVENTS_LEN`]
    /// bytes).
    ///
    /// Every other table (heads, commands, checkpoints, dead letters, workers, shards, recreate
    /// lock) follows it unless it was set explicitly: `<name>_heads`, `<name>_commands`, ...
    /// (`aggregate_heads`, `commands`, `projection_checkpoints`, `projection_dead_letters`,
    /// `workers`, `projection_shards` and `recreate_lock` for `events`), so that stores with
    /// different events tables in one schema never share a table. To name them otherwise, set
    /// them after this call.
    ///
    /// ```
    /// use pupsourcing_core::StoreConfig;
    /// let billing = StoreConfig::default().events_table("billing").unwrap();
    /// assert_eq!(billing.tables.aggregate_heads.as_str(), "billing_heads");
    /// assert_eq!(billing.tables.commands.as_str(), "billing_commands");
    /// let shared = billing.aggregate_heads_table("heads").unwrap();
    /// assert_eq!(shared.tables.aggregate_heads.as_str(), "heads");
    /// ```
    pub fn events_table(mut self, name: &str) -> Result<Self, ValidationError> {
        // The names the current events table gives the others by default (none if too long).
        let old = TableNames::for_events(self.tables.events.clone()).ok();
        let mut tables = TableNames::for_events(Identifier::new(name)?)?;
        for pick in TableNames::OTHERS {
            // A name set explicitly (not the old default) is kept.
            let current = pick(&mut self.tables).clone();
            if old.clone().map(|mut old| pick(&mut old).clone()) != Some(current.clone()) {
                *pick(&mut tables) = current;
            }
        }
        tables.validate()?;
        self.tables = tables;
        Ok(self)
    }

    /// Sets one table name, validating the result.
    fn table(
        mut self,
        pick: fn(&mut TableNames) -> &mut Identifier,
        name: &str,
    ) -> Result<Self, ValidationError> {
        let mut tables = self.tables.clone();
        *pick(&mut tables) = Identifier::new(name)?;
        tables.validate()?;
        self.tables = tables;
        Ok(self)
    }

    /// Sets the aggregate heads table name, validating it.
    pub fn aggregate_heads_table(self, name: &str) -> Result<Self, ValidationError> {
        self.table(|t| &mut t.aggregate_heads, name)
    }

    /// Sets the commands table name, validating it.
    pub fn commands_table(self, name: &str) -> Result<Self, ValidationError> {
        self.table(|t| &mut t.commands, name)
    }

    /// Sets the projection checkpoints table name, validating it.
    pub fn checkpoints_table(self, name: &str) -> Result<Self, ValidationError> {
        self.table(|t| &mut t.checkpoints, name)
    }

    /// Sets the orchestrator workers table name, validating it.
    pub fn workers_table(self, name: &str) -> Result<Self, ValidationError> {
        self.table(|t| &mut t.workers, name)
    }

    /// Sets the orchestrator shards table name, validating it.
    pub fn shards_table(self, name: &str) -> Result<Self, ValidationError> {
        self.table(|t| &mut t.shards, name)
    }

    /// Sets the orchestrator recreate lock table name, validating it.
    pub fn recreate_lock_table(self, name: &str) -> Result<Self, ValidationError> {
        self.table(|t| &mut t.recreate_lock, name)
    }

    /// Sets the projection dead letters table name, validating it.
    pub fn dead_letters_table(self, name: &str) -> Result<Self, ValidationError> {
        self.table(|t| &mut t.dead_letters, name)
    }

    /// Checks the table names (see [`TableNames::validate`]); `migrate` runs it on every
    /// backend, so names assigned to the public fields directly are checked too.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.tables.validate()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_events_name_leaves_room_for_every_derived_name() {
        assert_eq!(TableNames::MAX_EVENTS_LEN, 63 - "_stream_all_or_none".len());
        let longest = "e".repeat(TableNames::MAX_EVENTS_LEN);
        let config = StoreConfig::default().events_table(&longest).unwrap();
        assert_eq!(config.tables.commands.as_str(), format!("{longest}_commands"));
        let too_long = "e".repeat(TableNames::MAX_EVENTS_LEN + 1);
        for name in [too_long.as_str(), &"e".repeat(63)] {
            let err = StoreConfig::default().events_table(name).unwrap_err();
            assert!(matches!(err, ValidationError::TableNames { .. }), "{err:?}");
            assert!(err.to_string().contains("at most 44"), "{err}");
        }
    }

    #[test]
    fn a_too_long_name_set_on_the_field_is_caught_by_validate() {
        let mut config = StoreConfig::default();
        config.tables.events = Identifier::new("e".repeat(50)).unwrap();
        assert!(matches!(config.validate(), Err(ValidationError::TableNames { .. })));
    }

    #[test]
    fn heads_and_commands_follow_the_events_table_unless_set() {
        let default = StoreConfig::default();
        assert_eq!(default.tables.events.as_str(), "events");
        assert_eq!(default.tables.aggregate_heads.as_str(), "aggregate_heads");
        assert_eq!(default.tables.commands.as_str(), "commands");
        let billing = StoreConfig::default().events_table("Billing").unwrap();
        assert_eq!(billing.tables.aggregate_heads.as_str(), "billing_heads");
        assert_eq!(billing.tables.commands.as_str(), "billing_commands");
        let back = billing.clone().events_table("events").unwrap();
        assert_eq!(back.tables, TableNames::default());
        let explicit = StoreConfig::default()
            .aggregate_heads_table("heads")
            .unwrap()
            .events_table("billing")
            .unwrap();
        assert_eq!(explicit.tables.aggregate_heads.as_str(), "heads");
        assert_eq!(explicit.tables.commands.as_str(), "billing_commands");
    }

    #[test]
    fn the_longest_workers_name_leaves_room_for_its_derived_names() {
        assert_eq!(TableNames::MAX_WORKERS_LEN, 63 - "_locks_fk".len());
        let longest = "w".repeat(TableNames::MAX_WORKERS_LEN);
        let config = StoreConfig::default().workers_table(&longest).unwrap();
        assert_eq!(config.tables.workers.as_str(), longest);
        let err = StoreConfig::default().workers_table(&format!("{longest}w")).unwrap_err();
        assert!(matches!(err, ValidationError::TableNames { .. }), "{err:?}");
        assert!(err.to_string().contains("at most 54"), "{err}");
        let mut config = StoreConfig::default();
        config.tables.workers = Identifier::new("w".repeat(63)).unwrap();
        assert!(matches!(config.validate(), Err(ValidationError::TableNames { .. })));
        // The default workers table of the longest events table fits.
        let events = "e".repeat(TableNames::MAX_EVENTS_LEN);
        assert!(StoreConfig::default().events_table(&events).is_ok());
    }

    #[test]
    fn names_derived_from_the_workers_table_are_taken() {
        let config = StoreConfig::default().workers_table("pool").unwrap();
        let err = config.clone().shards_table("pool_locks").unwrap_err();
        assert!(err.to_string().contains("the shards table"), "{err}");
        assert!(config.clone().checkpoints_table("pool_locks_fk").is_err());
        let events = StoreConfig::default().events_table("pool_locks").unwrap();
        let err = events.workers_table("pool").unwrap_err();
        assert!(err.to_string().contains("the events table"), "{err}");
        assert!(config.shards_table("pool_shards").is_ok());
    }

    #[test]
    fn tables_that_would_share_a_name_are_refused() {
        let config = StoreConfig::default().events_table("billing").unwrap();
        for name in ["billing", "billing_tags", "billing_commands"] {
            let err = config.clone().aggregate_heads_table(name).unwrap_err();
            assert!(matches!(err, ValidationError::TableNames { .. }), "{name}: {err:?}");
        }
        assert!(config.clone().commands_table("billing_position_seq").is_err());
        assert!(config.aggregate_heads_table("x").unwrap().commands_table("x").is_err());
    }
}
