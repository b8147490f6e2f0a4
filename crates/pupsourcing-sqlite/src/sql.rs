//! Rendering of the `.sql` templates kept beside each module.
//!
//! Templates name tables with placeholders that are replaced once, when a store is built, by the
//! configured names. Those names are [`pupsourcing_core::Identifier`]s (ASCII letters, digits and
//! underscores only, folded to lower case), and they are double-quoted anyway so that a name which
//! happens to be an SQL keyword (`order`, `group`) still works.

use std::sync::Arc;

use pupsourcing_core::StoreConfig;
use sqlx::AssertSqlSafe;

/// Replaces every placeholder in `template` with the quoted identifier from `config`:
///
/// - `{events}`: the events table,
/// - `{aggregate_heads}`: the aggregate heads table,
/// - `{events_type_index}`: the index on the events table's event type,
/// - `{events_tags}`: the DCB tag index (`<events>_tags`),
/// - `{commands}`: the commands table of the DCB command executor,
/// - `{checkpoints}`: the projection checkpoints table,
/// - `{dead_letters}`: the projection dead letters table,
/// - `{workers}`: the orchestrator workers table,
/// - `{shards}`: the orchestrator shards table,
/// - `{recreate_lock}`: the orchestrator recreate lock table,
/// - `{now}`: the database clock, [`NOW_MICROS`].
pub(crate) fn render(template: &str, config: &StoreConfig) -> String {
    let events = config.tables.events.as_str();
    let heads = config.tables.aggregate_heads.as_str();
    template
        .replace("{events}", &quote(events))
        .replace("{aggregate_heads}", &quote(heads))
        .replace("{events_type_index}", &quote(&format!("{events}{TYPE_INDEX_SUFFIX}")))
        .replace("{events_tags}", &quote(&format!("{events}{TAGS_SUFFIX}")))
        .replace("{commands}", &quote(config.tables.commands.as_str()))
        .replace("{checkpoints}", &quote(config.tables.checkpoints.as_str()))
        .replace("{dead_letters}", &quote(config.tables.dead_letters.as_str()))
        .replace("{workers}", &quote(config.tables.workers.as_str()))
        .replace("{shards}", &quote(config.tables.shards.as_str()))
        .replace("{recreate_lock}", &quote(config.tables.recreate_lock.as_str()))
        .replace("{now}", NOW_MICROS)
}

/// SQLite's clock, now, in microseconds since the Unix epoch (UTC), rounded to the millisecond
/// (SQLite's `'now'` has millisecond resolution, and `julianday` recovers it exactly once
/// rounded). One value for a whole statement: SQLite reads the clock once per statement.
///
/// The coordination tables time heartbeats and stale workers by this clock: the database's
/// clock, as the orchestrator requires. For an embedded database it is the clock of the machine
/// the file is on, which every process sharing the file reads.
pub(crate) const NOW_MICROS: &str =
    "(CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000)";

/// The suffix naming the event type index after the events table.
const TYPE_INDEX_SUFFIX: &str = "_event_type_idx";
/// The suffix naming the DCB tag index after the events table.
const TAGS_SUFFIX: &str = "_tags";

/// A statement rendered once, shared by every clone of a store.
#[derive(Debug, Clone)]
pub(crate) struct Statement(Arc<str>);

impl Statement {
    /// Renders `template` for `config`.
    pub(crate) fn new(template: &str, config: &StoreConfig) -> Self {
        Self(render(template, config).into())
    }

    /// The statement for `sqlx::query`: built only from a template in this crate and validated
    /// identifiers, so it is safe SQL.
    pub(crate) fn sql(&self) -> AssertSqlSafe<Arc<str>> {
        AssertSqlSafe(self.0.clone())
    }

    /// The rendered text, for a fragment that a statement is built from.
    pub(crate) fn text(&self) -> &str {
        &self.0
    }
}

/// Double-quotes an identifier. Validated identifiers never contain a quote; doubling any is
/// nonetheless what SQLite expects.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_placeholder_with_a_quoted_name() {
        let config = StoreConfig::default()
            .events_table("order")
            .unwrap()
            .aggregate_heads_table("heads")
            .unwrap()
            .commands_table("group")
            .unwrap()
            .checkpoints_table("cps")
            .unwrap()
            .dead_letters_table("where")
            .unwrap()
            .workers_table("w")
            .unwrap()
            .shards_table("s")
            .unwrap()
            .recreate_lock_table("l")
            .unwrap();
        let sql = render(
            "SELECT * FROM {events}, {aggregate_heads}, {events_tags}, {commands}, {checkpoints}, \
             {dead_letters}, {workers}, {shards}, {recreate_lock} -- {events_type_index}",
            &config,
        );
        assert_eq!(
            sql,
            r#"SELECT * FROM "order", "heads", "order_tags", "group", "cps", "where", "w", "s", "l" -- "order_event_type_idx""#
        );
        assert_eq!(Statement::new("{events}", &config).text(), r#""order""#);
        assert_eq!(render("SELECT {now}", &config), format!("SELECT {NOW_MICROS}"));
    }

    /// The core's length limit on the events table accounts for the names derived here.
    #[test]
    fn derived_names_are_known_to_the_core() {
        for suffix in [TYPE_INDEX_SUFFIX, TAGS_SUFFIX] {
            assert!(pupsourcing_core::TableNames::DERIVED_SUFFIXES.contains(&suffix), "{suffix}");
        }
    }
}
