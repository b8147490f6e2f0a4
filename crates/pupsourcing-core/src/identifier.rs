//! Validated SQL identifiers for schema and table names.
//!
//! Table names are spliced into SQL text (they cannot be bind parameters), so only names that
//! pass [`Identifier::new`] ever reach a statement.

use crate::error::ValidationError;

/// A schema or table name: 1 to 63 ASCII letters, digits or underscores, not starting with a
/// digit. Such a name cannot inject SQL.
///
/// Names are folded to lower case, the way the databases resolve them: PostgreSQL folds unquoted
/// names and SQLite compares names without regard to ASCII case, so `Billing` and `billing` name
/// one table on both. Folding here makes everything derived from a name (derived table names,
/// the PostgreSQL lock namespace) agree with the table the database picks. Backends still quote
/// every name they splice, so that a reserved word (`user`, `order`, `select`) works as a name;
/// quoting a lower-case name keeps it the same table as the unquoted spelling.
///
/// ```
/// use pupsourcing_core::Identifier;
/// assert!(Identifier::new("events").is_ok());
/// assert!(Identifier::new("events; DROP TABLE x").is_err());
/// assert_eq!(Identifier::new("Billing").unwrap().as_str(), "billing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

impl Identifier {
    /// The longest name accepted (PostgreSQL truncates beyond 63 bytes).
    pub const MAX_LEN: usize = 63;

    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        let mut chars = name.chars();
        let valid_start = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid_start && valid_rest && name.len() <= Self::MAX_LEN {
            Ok(Self(name.to_ascii_lowercase()))
        } else {
            Err(ValidationError::InvalidIdentifier { name })
        }
    }

    /// The name as text, in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["events", "_x", "Events2", &"a".repeat(63)] {
            assert!(Identifier::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn folds_to_lower_case_like_the_databases() {
        assert_eq!(Identifier::new("Billing").unwrap(), Identifier::new("billing").unwrap());
        assert_eq!(Identifier::new("_Events2").unwrap().as_str(), "_events2");
    }

    #[test]
    fn rejects_everything_else() {
        for name in ["", "1abc", "a-b", "a b", "a.b", "ü", "x\"y", &"a".repeat(64)] {
            assert!(
                matches!(Identifier::new(name), Err(ValidationError::InvalidIdentifier { .. })),
                "{name}"
            );
        }
    }
}
