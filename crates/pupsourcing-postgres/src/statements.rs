//! The SQL this backend runs, rendered once per store from the `.sql` files beside this module.

use std::sync::Arc;

use pupsourcing_core::StoreConfig;

/// Every statement of the store, with schema and table names filled in.
#[derive(Debug)]
pub(crate) struct Statements {
    pub append: Arc<str>,
    pub append_direct_stream: Arc<str>,
    pub append_direct_dcb: Arc<str>,
    pub append_group: Arc<str>,
    pub read_stream: Arc<str>,
    pub read_all: Arc<str>,
    pub stream_version: Arc<str>,
    pub safe_head: Arc<str>,
    pub record_command: Arc<str>,
    /// Placeholder-free prefix of every DCB read (`SELECT <columns> FROM <events> e`).
    pub select_events: String,
    /// The events table, schema-qualified.
    pub events_table: String,
    /// The tag index table, schema-qualified.
    pub tags_table: String,
    /// This store's namespace in the advisory lock space.
    pub lock_namespace: u64,
}

impl Statements {
    pub fn new(config: &StoreConfig) -> Self {
        let render = |sql: &str| -> Arc<str> { Arc::from(render(sql, config)) };
        Self {
            append: render(include_str!("sql/append.sql")),
            append_direct_stream: render(include_str!("sql/append_direct_stream.sql")),
            append_direct_dcb: render(include_str!("sql/append_direct_dcb.sql")),
            append_group: render(include_str!("sql/append_group.sql")),
            read_stream: render(include_str!("sql/read_stream.sql")),
            read_all: render(include_str!("sql/read_all.sql")),
            stream_version: render(include_str!("sql/stream_version.sql")),
            safe_head: render(include_str!("sql/safe_head.sql")),
            record_command: render(include_str!("sql/record_command.sql")),
            select_events: render(include_str!("sql/select_events.sql")).trim_end().to_string(),
            events_table: render("{schema}.{events}").to_string(),
            tags_table: render("{schema}.{events}_tags").to_string(),
            lock_namespace: u64::from(marker_tag(config)),
        }
    }
}

/// Replaces the placeholders of a SQL template. Only validated identifiers and a number are
/// spliced in, so the result is as safe as the template.
pub(crate) fn render(template: &str, config: &StoreConfig) -> String {
    template
        .replace("{schema}", config.schema.as_str())
        .replace("{events}", config.tables.events.as_str())
        .replace("{aggregate_heads}", config.tables.aggregate_heads.as_str())
        .replace("{commands}", config.tables.commands.as_str())
        .replace("{marker_tag}", &marker_tag(config).to_string())
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
