//! Rendering of the `.sql` templates kept beside each module.
//!
//! Templates name tables with placeholders that are replaced once, when a store is built, by the
//! configured names. Those names are [`pupsourcing_core::Identifier`]s (ASCII letters, digits and
//! underscores only, folded to lower case), and they are backquoted anyway so that a name which
//! happens to be a reserved word (`order`, `select`) still works.

use std::sync::Arc;

use pupsourcing_core::StoreConfig;
use sqlx::AssertSqlSafe;

/// The schema name that means "the database of the connection": PostgreSQL's default schema,
/// which is [`StoreConfig`]'s default. Any other schema names a MySQL database of its own.
pub(crate) const CONNECTION_DATABASE: &str = "public";

/// The suffix naming the DCB tag index after the events table.
pub(crate) const TAGS_SUFFIX: &str = "_tags";
/// The suffix naming the DCB lock rows table after the events table.
pub(crate) const LOCKS_SUFFIX: &str = "_locks";
/// The suffix naming the position counter table after the events table.
pub(crate) const COUNTER_SUFFIX: &str = "_counter";
/// The suffix naming the worker lock rows table (one row per registered worker, which batch
/// commits lock shared; see `coordination`) after the workers table, whose rows they belong
/// to: two orchestrator pools on one events table, each with its own workers table, each have
/// their own.
pub(crate) const WORKER_LOCKS_SUFFIX: &str = "_locks";
/// The suffix naming that table's foreign key after the workers table. Named, because the name
/// InnoDB would make up (`<table>_ibfk_1`) can be too long for MariaDB's 64 characters; and
/// after the workers table, because constraint names are unique per database.
pub(crate) const WORKER_LOCKS_FK_SUFFIX: &str = "_locks_fk";

/// Replaces every placeholder in `template` with the qualified, quoted table from `config`:
///
/// - `{events}`, `{aggregate_heads}`, `{commands}`: the configured tables;
/// - `{events_tags}`: the DCB tag index (`<events>_tags`);
/// - `{events_locks}`: one row per DCB lock key (`<events>_locks`);
/// - `{events_counter}`: the position counter, one row (`<events>_counter`);
/// - `{checkpoints}`, `{dead_letters}`, `{workers}`, `{shards}`, `{recreate_lock}`: the
///   projection and orchestrator tables;
/// - `{worker_locks}`: one row per registered worker, locked by its batch commits
///   (`<workers>_locks`), and `{worker_locks_fk}`, its foreign key (`<workers>_locks_fk`, a
///   constraint name: quoted, not qualified);
/// - `{database}`: the database (`config.schema`), for `CREATE DATABASE`;
/// - `{now}`: the database clock now, in microseconds since the Unix epoch, UTC ([`NOW`]).
///
/// Tables are qualified with the database unless the schema is the default `public`, which
/// means the database the connection URL names.
pub(crate) fn render(template: &str, config: &StoreConfig) -> String {
    let events = config.tables.events.as_str();
    let workers = config.tables.workers.as_str();
    let table = |name: &str| qualified(config, name);
    template
        .replace("{events}", &table(events))
        .replace("{aggregate_heads}", &table(config.tables.aggregate_heads.as_str()))
        .replace("{commands}", &table(config.tables.commands.as_str()))
        .replace("{events_tags}", &table(&format!("{events}{TAGS_SUFFIX}")))
        .replace("{events_locks}", &table(&format!("{events}{LOCKS_SUFFIX}")))
        .replace("{events_counter}", &table(&format!("{events}{COUNTER_SUFFIX}")))
        .replace("{checkpoints}", &table(config.tables.checkpoints.as_str()))
        .replace("{dead_letters}", &table(config.tables.dead_letters.as_str()))
        .replace("{workers}", &table(workers))
        .replace("{worker_locks}", &table(&format!("{workers}{WORKER_LOCKS_SUFFIX}")))
        .replace("{worker_locks_fk}", &quote(&format!("{workers}{WORKER_LOCKS_FK_SUFFIX}")))
        .replace("{shards}", &table(config.tables.shards.as_str()))
        .replace("{recreate_lock}", &table(config.tables.recreate_lock.as_str()))
        .replace("{database}", &quote(config.schema.as_str()))
        .replace("{now}", NOW)
}

/// The database clock now, in microseconds since the Unix epoch, UTC: `UTC_TIMESTAMP` does not
/// depend on the session's time zone (`UNIX_TIMESTAMP(NOW(6))` would, and is ambiguous in the
/// hour a daylight-saving change repeats). Constant within one statement.
pub(crate) const NOW: &str = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))";

/// Whether the tables live in a database named by the configuration (else the connection's).
pub(crate) fn own_database(config: &StoreConfig) -> bool {
    config.schema.as_str() != CONNECTION_DATABASE
}

fn qualified(config: &StoreConfig, name: &str) -> String {
    if own_database(config) {
        format!("{}.{}", quote(config.schema.as_str()), quote(name))
    } else {
        quote(name)
    }
}

/// Backquotes an identifier. Validated identifiers never contain a backquote; doubling any is
/// nonetheless what MySQL expects.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `template` rendered for `config` ([`render`]) without its comment lines (`--` at a line's
/// start), for statements sent as text with every call: the comments need not travel each
/// time, and placeholders filled later by `str::replace` must not be filled in comments that
/// name them.
pub(crate) fn uncommented(template: &str, config: &StoreConfig) -> String {
    let lines: Vec<&str> = template.lines().filter(|line| !line.starts_with("--")).collect();
    render(&lines.join("\n"), config).trim().to_string()
}

/// A statement rendered once, shared by every clone of a store.
#[derive(Debug, Clone)]
pub(crate) struct Statement(Arc<str>);

impl Statement {
    /// Renders `template` for `config`.
    pub(crate) fn new(template: &str, config: &StoreConfig) -> Self {
        Self(render(template, config).into())
    }

    /// Renders `template` for `config` without its comment lines ([`uncommented`]).
    pub(crate) fn uncommented(template: &str, config: &StoreConfig) -> Self {
        Self(uncommented(template, config).into())
    }

    /// The statement for `sqlx::query`: built only from a template in this crate and validated
    /// identifiers, so it is safe SQL.
    pub(crate) fn sql(&self) -> AssertSqlSafe<Arc<str>> {
        AssertSqlSafe(self.0.clone())
    }

    /// The rendered text, for a statement built from fragments.
    pub(crate) fn text(&self) -> &str {
        &self.0
    }
}

/// `count` comma-separated copies of `tuple` (e.g. `(?, ?)`), for multi-row statements.
pub(crate) fn repeated(tuple: &str, count: usize) -> String {
    vec![tuple; count].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_placeholder_with_a_quoted_name() {
        let config = StoreConfig::default().events_table("order").unwrap();
        let sql = render(
            "{events} {aggregate_heads} {commands} {events_tags} {events_locks} {events_counter} \
             {workers} {worker_locks}",
            &config,
        );
        assert_eq!(
            sql,
            "`order` `order_heads` `order_commands` `order_tags` `order_locks` `order_counter` \
             `order_workers` `order_workers_locks`"
        );
        let config = config.schema("Billing").unwrap();
        assert_eq!(render("{events} {database}", &config), "`billing`.`order` `billing`");
    }

    /// The core's length limits on the events and workers tables account for the names
    /// derived here.
    #[test]
    fn derived_names_are_known_to_the_core() {
        use pupsourcing_core::TableNames;
        for suffix in [TAGS_SUFFIX, LOCKS_SUFFIX, COUNTER_SUFFIX] {
            assert!(TableNames::DERIVED_SUFFIXES.contains(&suffix), "{suffix}");
        }
        for suffix in [WORKER_LOCKS_SUFFIX, WORKER_LOCKS_FK_SUFFIX] {
            assert!(TableNames::WORKERS_DERIVED_SUFFIXES.contains(&suffix), "{suffix}");
        }
    }

    #[test]
    fn comment_lines_are_left_out() {
        let text = uncommented(
            "-- {events} here\nSELECT 1 FROM {events}\n-- end\n",
            &StoreConfig::default(),
        );
        assert_eq!(text, "SELECT 1 FROM `events`");
    }

    #[test]
    fn repeats_tuples() {
        assert_eq!(repeated("(?, ?)", 3), "(?, ?), (?, ?), (?, ?)");
    }
}
