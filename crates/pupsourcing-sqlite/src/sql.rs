//! Rendering of the `.sql` templates kept beside each module.
//!
//! Templates name tables with placeholders that are replaced once, when a store is built, by the
//! configured names. Those names are [`pupsourcing_core::Identifier`]s (ASCII letters, digits and
//! underscores only), and they are double-quoted anyway so that a name which happens to be an SQL
//! keyword (`order`, `group`) still works.

use std::sync::Arc;

use pupsourcing_core::StoreConfig;
use sqlx::AssertSqlSafe;

/// Replaces every placeholder in `template` with the quoted identifier from `config`:
///
/// - `{events}`: the events table,
/// - `{aggregate_heads}`: the aggregate heads table,
/// - `{events_type_index}`: the index on the events table's event type.
pub(crate) fn render(template: &str, config: &StoreConfig) -> String {
    let events = config.tables.events.as_str();
    let heads = config.tables.aggregate_heads.as_str();
    template
        .replace("{events}", &quote(events))
        .replace("{aggregate_heads}", &quote(heads))
        .replace("{events_type_index}", &quote(&format!("{events}_event_type_idx")))
}

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

    /// The rendered text.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
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
            .unwrap();
        let sql =
            render("SELECT * FROM {events}, {aggregate_heads} -- {events_type_index}", &config);
        assert_eq!(sql, r#"SELECT * FROM "order", "heads" -- "order_event_type_idx""#);
        assert_eq!(Statement::new("{events}", &config).as_str(), r#""order""#);
    }
}
