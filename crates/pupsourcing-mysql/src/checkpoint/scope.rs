//! A projection's scope and partition as SQL conditions on the events row `e`, with `?` binds
//! only: a scope's strings are never spliced into the statement.

use std::fmt::Write;

use pupsourcing_core::projection::{Partition, Scope};

use crate::dcb::{Bind, Compiled};
use crate::sql::repeated;

/// Appends the `AND ...` conditions selecting `scope`'s events of `partition` to `c`.
/// `tag_count` is the rendered `tag_count.sql`.
pub(crate) fn push_filter(scope: &Scope, partition: Partition, tag_count: &str, c: &mut Compiled) {
    for (column, list) in [
        ("aggregate_type", &scope.aggregate_types),
        ("bounded_context", &scope.bounded_contexts),
        ("event_type", &scope.event_types),
    ] {
        if !list.is_empty() {
            // A NULL column (an event outside any stream, without a context) matches nothing.
            let _ = write!(c.text, "\n  AND e.{column} IN ");
            push_list(c, list);
        }
    }
    if let Some(query) = scope.query.as_ref().filter(|q| !q.is_all()) {
        // DCB item semantics: an item matches an event of one of its types (any type when it
        // lists none) carrying all of its tags (validation: no tag twice in an item); the
        // query matches when any item does.
        c.text.push_str("\n  AND (");
        for (i, item) in query.items.iter().enumerate() {
            if i > 0 {
                c.text.push_str(" OR ");
            }
            c.text.push('(');
            if !item.types.is_empty() {
                c.text.push_str("e.event_type IN ");
                push_list(c, &item.types);
            }
            if !item.tags.is_empty() {
                if !item.types.is_empty() {
                    c.text.push_str(" AND ");
                }
                c.text.push_str(tag_count.trim_end());
                c.text.push(' ');
                push_list(c, &item.tags);
                let _ = write!(c.text, ") = {}", item.tags.len());
            }
            if item.types.is_empty() && item.tags.is_empty() {
                // Validation refuses such an item; it would match every event.
                c.text.push_str("TRUE");
            }
            c.text.push(')');
        }
        c.text.push(')');
    }
    if partition.count() > 1 {
        c.text.push_str("\n  AND e.partition_hash % ? = ?");
        c.binds.push(Bind::Int(i64::from(partition.count())));
        c.binds.push(Bind::Int(i64::from(partition.key())));
    }
}

/// An `IN` list of `values`.
fn push_list(c: &mut Compiled, values: &[String]) {
    let _ = write!(c.text, "({})", repeated("?", values.len()));
    c.binds.extend(values.iter().cloned().map(Bind::Text));
}

#[cfg(test)]
mod tests {
    use pupsourcing_core::dcb::{Query, QueryItem};

    use super::*;

    #[test]
    fn the_filter_binds_every_value_and_splices_none() {
        let scope = Scope::all()
            .aggregate_types(["Order'; DROP TABLE x; --"])
            .event_types(["Placed"])
            .query(Query::from_items([
                QueryItem::types(["A", "B"]).with_tags(["t:1"]),
                QueryItem::tags(["t:2", "t:3"]),
            ]));
        let mut c = Compiled::default();
        push_filter(&scope, Partition::new(2, 4).unwrap(), "(COUNT ", &mut c);
        assert!(!c.text.contains("DROP"), "{}", c.text);
        assert_eq!(c.text.matches('?').count(), c.binds.len(), "{}", c.text);
        assert_eq!(c.binds.len(), 9);
        assert_eq!(
            c.text,
            "\n  AND e.aggregate_type IN (?)\n  AND e.event_type IN (?)\
             \n  AND ((e.event_type IN (?, ?) AND (COUNT (?)) = 1) OR ((COUNT (?, ?)) = 2))\
             \n  AND e.partition_hash % ? = ?"
        );
        assert_eq!(c.binds[7..], [Bind::Int(4), Bind::Int(2)]);
    }

    #[test]
    fn the_whole_log_in_one_partition_has_no_filter() {
        let mut c = Compiled::default();
        push_filter(&Scope::all().query(Query::all()), Partition::all(), "", &mut c);
        assert!(c.text.is_empty() && c.binds.is_empty());
    }
}
