//! Rendering of the `.sql` templates kept beside each module: this crate's counterpart of the
//! MySQL and SQLite crates' `sql.rs` ([`render`] fills in the configured, validated names).
//!
//! Unlike those crates, where each module renders its own statements, the statements are
//! rendered here, once per store, into one [`Statements`] shared by every module: the templates
//! stay beside the module that runs them (`append/`, `read/`, `dcb/`, `checkpoint/`,
//! `coordination/`, `migrate/`), and only their rendering is gathered in this file.

use std::sync::Arc;

use pupsourcing_core::StoreConfig;

/// Every statement of the store, with schema and table names filled in.
#[derive(Debug)]
pub(crate) struct Statements {
    pub append: Arc<str>,
    pub append_recorded: Arc<str>,
    pub append_direct_stream: Arc<str>,
    pub append_direct_dcb: Arc<str>,
    pub append_direct_recorded: Arc<str>,
    pub append_group: Arc<str>,
    pub read_stream: Arc<str>,
    pub read_all: Arc<str>,
    pub stream_version: Arc<str>,
    pub safe_head: Arc<str>,
    pub query_head: Arc<str>,
    pub record_command: Arc<str>,
    pub checkpoint_get: Arc<str>,
    pub checkpoint_advance: Arc<str>,
    pub checkpoint_error: Arc<str>,
    pub checkpoint_list: Arc<str>,
    pub checkpoint_reset: Arc<str>,
    pub dead_letter_add: Arc<str>,
    pub dead_letter_remove: Arc<str>,
    pub dead_letter_list: Arc<str>,
    pub stall: Arc<str>,
    pub coordination_register: Arc<str>,
    pub coordination_heartbeat: Arc<str>,
    pub coordination_remove_worker: Arc<str>,
    pub coordination_remove_stale: Arc<str>,
    pub coordination_workers: Arc<str>,
    pub coordination_generation: Arc<str>,
    pub coordination_begin_generation: Arc<str>,
    pub coordination_set_phase: Arc<str>,
    pub coordination_ensure_shards: Arc<str>,
    pub coordination_shards: Arc<str>,
    pub coordination_assign: Arc<str>,
    pub coordination_advance: Arc<str>,
    pub coordination_shard_error: Arc<str>,
    pub coordination_lock_counts: Arc<str>,
    pub coordination_lock_shards: Arc<str>,
    pub coordination_reshard: Arc<str>,
    pub coordination_clock: Arc<str>,
    /// Placeholder-free prefix of a projection batch read, to which the scope's filters are
    /// added (`checkpoint/batch.sql`).
    pub checkpoint_batch: String,
    /// Placeholder-free prefix of a projection's lag count (`checkpoint/pending.sql`).
    pub checkpoint_pending: String,
    /// Placeholder-free prefix of every DCB read (`SELECT <columns> FROM <events> e`).
    pub select_events: String,
    /// The events table, schema-qualified.
    pub events_table: String,
    /// The tag index table, schema-qualified.
    pub tags_table: String,
    /// The query head function (`{events}_query_head`), schema-qualified.
    pub query_head_fn: String,
    /// This store's namespace in the advisory lock space.
    pub lock_namespace: u64,
}

impl Statements {
    pub fn new(config: &StoreConfig) -> Self {
        let render = |sql: &str| -> Arc<str> { Arc::from(render(sql, config)) };
        Self {
            append: render(include_str!("append/append.sql")),
            append_recorded: render(include_str!("append/recorded.sql")),
            append_direct_stream: render(include_str!("append/direct_stream.sql")),
            append_direct_dcb: render(include_str!("append/direct_dcb.sql")),
            append_direct_recorded: render(&with_record_step(
                include_str!("append/direct_dcb.sql"),
                include_str!("append/direct_recorded.sql"),
            )),
            append_group: render(include_str!("append/group.sql")),
            read_stream: render(include_str!("read/stream.sql")),
            read_all: render(include_str!("read/all.sql")),
            stream_version: render(include_str!("read/stream_version.sql")),
            safe_head: render(include_str!("read/safe_head.sql")),
            query_head: render(include_str!("read/query_head.sql")),
            record_command: render(include_str!("dcb/record_command.sql")),
            checkpoint_get: render(include_str!("checkpoint/get.sql")),
            checkpoint_advance: render(include_str!("checkpoint/advance.sql")),
            checkpoint_error: render(include_str!("checkpoint/error.sql")),
            checkpoint_list: render(include_str!("checkpoint/list.sql")),
            checkpoint_reset: render(include_str!("checkpoint/reset.sql")),
            dead_letter_add: render(include_str!("checkpoint/dead_letter_add.sql")),
            dead_letter_remove: render(include_str!("checkpoint/dead_letter_remove.sql")),
            dead_letter_list: render(include_str!("checkpoint/dead_letter_list.sql")),
            stall: render(include_str!("checkpoint/stall.sql")),
            coordination_register: render(include_str!("coordination/register.sql")),
            coordination_heartbeat: render(include_str!("coordination/heartbeat.sql")),
            coordination_remove_worker: render(include_str!("coordination/remove_worker.sql")),
            coordination_remove_stale: render(include_str!("coordination/remove_stale.sql")),
            coordination_workers: render(include_str!("coordination/workers.sql")),
            coordination_generation: render(include_str!("coordination/generation.sql")),
            coordination_begin_generation: render(include_str!(
                "coordination/begin_generation.sql"
            )),
            coordination_set_phase: render(include_str!("coordination/set_phase.sql")),
            coordination_ensure_shards: render(include_str!("coordination/ensure_shards.sql")),
            coordination_shards: render(include_str!("coordination/shards.sql")),
            coordination_assign: render(include_str!("coordination/assign.sql")),
            coordination_advance: render(include_str!("coordination/advance.sql")),
            coordination_shard_error: render(include_str!("coordination/shard_error.sql")),
            coordination_lock_counts: render(include_str!("coordination/lock_counts.sql")),
            coordination_lock_shards: render(include_str!("coordination/lock_shards.sql")),
            coordination_reshard: render(include_str!("coordination/reshard.sql")),
            coordination_clock: render(include_str!("coordination/clock.sql")),
            checkpoint_batch: render(include_str!("checkpoint/batch.sql")).trim_end().to_string(),
            checkpoint_pending: render(include_str!("checkpoint/pending.sql"))
                .trim_end()
                .to_string(),
            select_events: render(include_str!("dcb/select_events.sql")).trim_end().to_string(),
            events_table: render("{schema}.{events}").to_string(),
            tags_table: render("{schema}.{events}_tags").to_string(),
            query_head_fn: render("{schema}.{events}_query_head").to_string(),
            lock_namespace: u64::from(marker_tag(config)),
        }
    }
}

/// The direct DCB append (`direct_dcb`) with one more CTE (`step`, from its own file) before
/// its final SELECT, so the two statements share every other line.
fn with_record_step(direct_dcb: &str, step: &str) -> String {
    // The end of the statement's last CTE, where the next one can follow.
    const LAST_CTE_END: &str = "\n)\nSELECT 'appended'";
    let step: String = step.lines().filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n");
    let spliced = format!("\n), {}\nSELECT 'appended'", step.trim());
    assert!(direct_dcb.contains(LAST_CTE_END), "append/direct_dcb.sql ends with its CTEs");
    direct_dcb.replacen(LAST_CTE_END, &spliced, 1)
}

/// The SQL templates of this crate, for the test that checks their derived names.
#[cfg(test)]
const TEMPLATES: &[&str] = &[
    include_str!("migrate/schema.sql"),
    include_str!("append/append.sql"),
    include_str!("append/recorded.sql"),
    include_str!("append/direct_stream.sql"),
    include_str!("append/direct_dcb.sql"),
    include_str!("append/direct_recorded.sql"),
    include_str!("append/group.sql"),
    include_str!("read/stream.sql"),
    include_str!("read/all.sql"),
    include_str!("read/stream_version.sql"),
    include_str!("read/safe_head.sql"),
    include_str!("read/query_head.sql"),
    include_str!("dcb/record_command.sql"),
    include_str!("dcb/select_events.sql"),
    include_str!("checkpoint/get.sql"),
    include_str!("checkpoint/advance.sql"),
    include_str!("checkpoint/error.sql"),
    include_str!("checkpoint/list.sql"),
    include_str!("checkpoint/reset.sql"),
    include_str!("checkpoint/batch.sql"),
    include_str!("checkpoint/pending.sql"),
    include_str!("checkpoint/dead_letter_add.sql"),
    include_str!("checkpoint/dead_letter_remove.sql"),
    include_str!("checkpoint/dead_letter_list.sql"),
    include_str!("checkpoint/stall.sql"),
    include_str!("coordination/register.sql"),
    include_str!("coordination/heartbeat.sql"),
    include_str!("coordination/remove_worker.sql"),
    include_str!("coordination/remove_stale.sql"),
    include_str!("coordination/workers.sql"),
    include_str!("coordination/generation.sql"),
    include_str!("coordination/begin_generation.sql"),
    include_str!("coordination/set_phase.sql"),
    include_str!("coordination/ensure_shards.sql"),
    include_str!("coordination/shards.sql"),
    include_str!("coordination/assign.sql"),
    include_str!("coordination/advance.sql"),
    include_str!("coordination/shard_error.sql"),
    include_str!("coordination/lock_shards.sql"),
    include_str!("coordination/reshard.sql"),
    include_str!("coordination/clock.sql"),
];

/// Replaces the placeholders of a SQL template. `{schema}`, `{events}`, `{aggregate_heads}`,
/// `{commands}`, `{checkpoints}`, `{dead_letters}`, `{workers}`, `{shards}` and `{recreate_lock}` become double-quoted names, together with
/// the name characters that follow them (`{events}_tags` is the one name `"events_tags"`), so
/// that reserved words work as names; `{marker_tag}` becomes a number. Only validated identifiers (lower case, so quoting them
/// names the same object as the unquoted spelling) and a number are spliced in, so the result
/// is as safe as the template.
pub(crate) fn render(template: &str, config: &StoreConfig) -> String {
    let names = [
        ("{schema}", config.schema.as_str()),
        ("{events}", config.tables.events.as_str()),
        ("{aggregate_heads}", config.tables.aggregate_heads.as_str()),
        ("{commands}", config.tables.commands.as_str()),
        ("{checkpoints}", config.tables.checkpoints.as_str()),
        ("{dead_letters}", config.tables.dead_letters.as_str()),
        ("{workers}", config.tables.workers.as_str()),
        ("{shards}", config.tables.shards.as_str()),
        ("{recreate_lock}", config.tables.recreate_lock.as_str()),
    ];
    let template = template.replace("{marker_tag}", &marker_tag(config).to_string());
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template.as_str();
    'scan: while let Some(brace) = rest.find('{') {
        out.push_str(&rest[..brace]);
        rest = &rest[brace..];
        for (placeholder, name) in names {
            if let Some(after) = rest.strip_prefix(placeholder) {
                let suffix_len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                out.push('"');
                out.push_str(name);
                out.push_str(&after[..suffix_len]);
                out.push('"');
                rest = &after[suffix_len..];
                continue 'scan;
            }
        }
        out.push('{');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// A 16-bit tag naming this store's events table among the advisory locks of the database, so
/// stores in other schemas do not see each other's in-flight markers. Two stores sharing a tag
/// only make each other's readers more cautious, never wrong (see ARCHITECTURE.md).
pub(crate) fn marker_tag(config: &StoreConfig) -> u16 {
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    let name = format!("{}.{}", config.schema, config.tables.events);
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash >> 48) as u16
}

#[cfg(test)]
mod tests {
    use pupsourcing_core::TableNames;

    use super::*;

    #[test]
    fn quotes_every_name_with_its_suffix() {
        let config = StoreConfig::default()
            .schema("Select")
            .unwrap()
            .events_table("user")
            .unwrap()
            .aggregate_heads_table("order")
            .unwrap();
        let sql = render(
            "SELECT '{}' FROM {schema}.{events}_tags, {schema}.{aggregate_heads} h, {commands}, \
             '{schema}.{events}_position_seq' -- {marker_tag}",
            &config,
        );
        let tag = marker_tag(&config);
        assert_eq!(
            sql,
            format!(
                r#"SELECT '{{}}' FROM "select"."user_tags", "select"."order" h, "user_commands", '"select"."user_position_seq"' -- {tag}"#
            )
        );
    }

    /// Every name a template derives from the events table is one whose length the core's
    /// `TableNames::MAX_EVENTS_LEN` accounts for.
    #[test]
    fn templates_derive_only_known_suffixes() {
        for template in TEMPLATES {
            for (i, _) in template.match_indices("{events}") {
                let after = &template[i + "{events}".len()..];
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                let suffix = &after[..len];
                assert!(
                    suffix.is_empty() || TableNames::DERIVED_SUFFIXES.contains(&suffix),
                    "{suffix} is not in TableNames::DERIVED_SUFFIXES"
                );
            }
        }
    }

    /// Names that differ only in case are one table to PostgreSQL, so one lock namespace.
    #[test]
    fn the_marker_tag_follows_the_name_the_database_resolves() {
        let upper = StoreConfig::default().schema("Shop").unwrap().events_table("Billing");
        let lower = StoreConfig::default().schema("shop").unwrap().events_table("billing");
        assert_eq!(marker_tag(&upper.unwrap()), marker_tag(&lower.unwrap()));
    }
}
