//! [`SchemaStatus`]: which of a store's tables a database has, for `pup migrate status` and
//! for telling "the schema is missing" apart from other errors.

use crate::config::TableNames;
use crate::identifier::Identifier;

/// One table of the store's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaTable {
    /// What it holds (`events`, `aggregate heads`, `checkpoints`, ...).
    pub role: &'static str,
    /// Its configured name.
    pub name: Identifier,
    /// Whether the database has it.
    pub present: bool,
}

/// Which of the configured tables exist: every one after a migration, none before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Where the tables were looked for (PostgreSQL: the schema; SQLite: `main`).
    pub location: String,
    /// Every table of the configuration, the events table first.
    pub tables: Vec<SchemaTable>,
}

impl SchemaStatus {
    /// The status of `tables` in `location`, asking `present` about each name (as the backend
    /// found it in its catalog).
    pub fn new(
        location: impl Into<String>,
        tables: &TableNames,
        present: impl Fn(&Identifier) -> bool,
    ) -> Self {
        let tables = tables
            .all()
            .into_iter()
            .map(|(role, name)| SchemaTable { role, name: name.clone(), present: present(name) })
            .collect();
        Self { location: location.into(), tables }
    }

    /// True when every table exists.
    pub fn is_applied(&self) -> bool {
        self.tables.iter().all(|t| t.present)
    }

    /// True when none exists (a database the store was never migrated on).
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|t| !t.present)
    }

    /// The tables that do not exist.
    pub fn missing(&self) -> impl Iterator<Item = &SchemaTable> {
        self.tables.iter().filter(|t| !t.present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_only_when_every_table_is_present() {
        let names = TableNames::default();
        let all = SchemaStatus::new("public", &names, |_| true);
        assert!(all.is_applied() && !all.is_empty());
        assert_eq!(all.tables.len(), 8);
        assert_eq!(all.tables[0].role, "events");
        let none = SchemaStatus::new("public", &names, |_| false);
        assert!(none.is_empty() && !none.is_applied());
        let partial = SchemaStatus::new("public", &names, |n| n.as_str() == "events");
        assert!(!partial.is_applied() && !partial.is_empty());
        let missing: Vec<_> = partial.missing().map(|t| t.name.as_str()).collect();
        assert_eq!(missing.len(), 7);
        assert!(missing.contains(&"projection_checkpoints"));
    }
}
