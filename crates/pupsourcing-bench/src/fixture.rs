//! Fresh schemas for one run: the library's (created by `PgEventStore::migrate`) and the
//! floor's (plain DDL), and the bulk load of the catch-up read scenario.

use pupsourcing_core::StoreConfig;
use pupsourcing_postgres::PgEventStore;
use sqlx::{AssertSqlSafe, PgPool};

use crate::BoxError;
use crate::events::SQL_PAYLOAD;
use crate::project::RARE_TYPE;

/// The schemas of one run.
pub struct Fixture {
    pub pool: PgPool,
    /// Schema of the library's tables (`<lib>.events`, `<lib>.aggregate_heads`).
    pub lib: String,
    /// Schema of the floor table (`<floor>.events`).
    pub floor: String,
    pub config: StoreConfig,
}

/// The floor: the same columns, constraints and indexes as the library's events table, but the
/// position comes from a BIGSERIAL and there is no function; plus the same heads and tag tables,
/// for the floor that writes the same rows as the library.
const FLOOR_DDL: &str = r#"
CREATE SCHEMA {floor};
CREATE TABLE {floor}.events (
    global_position   BIGSERIAL PRIMARY KEY,
    event_id          UUID NOT NULL UNIQUE,
    event_type        TEXT NOT NULL,
    event_version     INT NOT NULL DEFAULT 1,
    bounded_context   TEXT,
    aggregate_type    TEXT,
    aggregate_id      UUID,
    aggregate_version BIGINT,
    tags              TEXT[] NOT NULL DEFAULT '{}',
    payload           BYTEA NOT NULL,
    metadata          JSON,
    trace_id          UUID,
    correlation_id    UUID,
    causation_id      UUID,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_all_or_none
        CHECK (num_nulls(aggregate_type, aggregate_id, aggregate_version) IN (0, 3)),
    CONSTRAINT events_stream_version UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);
CREATE INDEX events_type_position ON {floor}.events (event_type, global_position);
CREATE TABLE {floor}.aggregate_heads (
    aggregate_type    TEXT NOT NULL,
    aggregate_id      UUID NOT NULL,
    aggregate_version BIGINT NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
CREATE TABLE {floor}.events_tags (
    tag             TEXT NOT NULL,
    global_position BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    PRIMARY KEY (tag, global_position)
);
"#;

/// Every column of the events table, in the order both read paths decode them.
pub const COLUMNS: &str = "global_position, event_id, event_type, event_version, bounded_context, \
     aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata, trace_id, \
     correlation_id, causation_id, created_at";

impl Fixture {
    /// Creates both schemas under fresh random names.
    pub async fn create(pool: PgPool) -> Result<Self, BoxError> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let lib = format!("pup_bench_{}_lib", &suffix[..12]);
        let floor = format!("pup_bench_{}_floor", &suffix[..12]);
        let config = StoreConfig::default().schema(&lib)?;
        let fixture = Self { pool, lib, floor, config };
        fixture.store().migrate().await?;
        sqlx::raw_sql(AssertSqlSafe(FLOOR_DDL.replace("{floor}", &fixture.floor)))
            .execute(&fixture.pool)
            .await?;
        Ok(fixture)
    }

    /// A new store on the shared pool (a fresh one has no cached head).
    pub fn store(&self) -> PgEventStore {
        PgEventStore::new(self.pool.clone(), self.config.clone())
    }

    /// Drops both schemas.
    pub async fn drop_schemas(&self) -> Result<(), BoxError> {
        let sql = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE;",
            self.lib, self.floor
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&self.pool).await?;
        Ok(())
    }

    /// Flushes dirty buffers so that no checkpoint started by one side's writes lands in the
    /// other side's measurement. Needs superuser (or pg_checkpoint); skipped when refused.
    pub async fn checkpoint(&self) {
        if let Err(err) = sqlx::raw_sql("CHECKPOINT").execute(&self.pool).await {
            eprintln!("note: CHECKPOINT refused ({err}); measurements may include checkpoints");
        }
    }

    /// Empties both logs and loads `n` identical events into each (the catch-up read's data).
    pub async fn load_log(&self, n: u64) -> Result<(), BoxError> {
        let (lib, floor) = (&self.lib, &self.floor);
        let truncate = format!(
            "TRUNCATE {lib}.events, {lib}.events_tags, {lib}.aggregate_heads RESTART IDENTITY; \
             TRUNCATE {floor}.events, {floor}.events_tags, {floor}.aggregate_heads RESTART IDENTITY;"
        );
        sqlx::raw_sql(AssertSqlSafe(truncate)).execute(&self.pool).await?;
        self.seed(n).await
    }

    /// Adds `n` identical events to both logs, then vacuums and analyzes both tables: the
    /// library's through its own position sequence (no stream, so no head rows; tag-index rows
    /// are added), the floor's as a copy of the same rows with the same
    /// positions.
    pub async fn seed(&self, n: u64) -> Result<(), BoxError> {
        let (lib, floor) = (&self.lib, &self.floor);
        if n > 0 {
            let load_lib = format!(
                "INSERT INTO {lib}.events ({COLUMNS}, partition_hash)
                 SELECT nextval('{lib}.events_position_seq'), gen_random_uuid(),
                        CASE WHEN g % 100 = 0 THEN '{RARE_TYPE}' ELSE 'OrderPlaced' END, 1,
                        'sales', NULL, NULL, NULL, ARRAY['customer:' || (g % 1000), 'order:' || (g % 100000)], {SQL_PAYLOAD},
                        jsonb_build_object('source', 'bench', 'user_id', 'user-' || (g % 1000)),
                        NULL, gen_random_uuid(), NULL, now(),
                        -- a uniform 32-bit partition hash, as the library's hash of an id
                        ('x' || substr(md5(random()::text), 1, 8))::bit(32)::bigint
                   FROM generate_series(1, $1::bigint) AS g"
            );
            sqlx::query(AssertSqlSafe(load_lib)).bind(n as i64).execute(&self.pool).await?;
            // Keep the library's store consistent: its DCB tag index has a row per event tag.
            let index_tags = format!(
                "INSERT INTO {lib}.events_tags (tag, global_position, event_type)
                 SELECT unnest(e.tags), e.global_position, e.event_type FROM {lib}.events e
                  WHERE NOT EXISTS (SELECT 1 FROM {lib}.events_tags t
                                     WHERE t.global_position = e.global_position)"
            );
            sqlx::raw_sql(AssertSqlSafe(index_tags)).execute(&self.pool).await?;
            let load_floor = format!(
                "INSERT INTO {floor}.events ({COLUMNS}) SELECT {COLUMNS} FROM {lib}.events
                  WHERE global_position > (SELECT coalesce(max(global_position), 0)
                                             FROM {floor}.events);
                 SELECT setval('{floor}.events_global_position_seq',
                               (SELECT max(global_position) FROM {floor}.events));"
            );
            sqlx::raw_sql(AssertSqlSafe(load_floor)).execute(&self.pool).await?;
            // A log of this size belongs to many streams: give both stores one head row per
            // ten events, so that head lookups are planned against a realistic table (an empty
            // analyzed heads table gets sequential-scan plans that stay while it grows).
            for schema in [lib, floor] {
                let heads = format!(
                    "INSERT INTO {schema}.aggregate_heads (aggregate_type, aggregate_id, aggregate_version)
                     SELECT 'Seeded', gen_random_uuid(), 10 FROM generate_series(1, $1::bigint / 10)"
                );
                sqlx::query(AssertSqlSafe(heads)).bind(n as i64).execute(&self.pool).await?;
            }
        }
        // Fresh statistics for every table, and hint bits and the visibility map set now, so
        // that neither side pays for them during a measurement. (One statement per call:
        // VACUUM cannot run in a multi-statement string.)
        for table in [
            format!("{lib}.events"),
            format!("{lib}.events_tags"),
            format!("{lib}.aggregate_heads"),
            format!("{floor}.events"),
            format!("{floor}.events_tags"),
            format!("{floor}.aggregate_heads"),
        ] {
            let vacuum = format!("VACUUM (ANALYZE) {table}");
            sqlx::raw_sql(AssertSqlSafe(vacuum)).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The server's version string and a few settings that shape the numbers.
    pub async fn server_info(&self) -> Result<String, BoxError> {
        let (version, sync, buffers, max_conn): (String, String, String, String) = sqlx::query_as(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'),
                    current_setting('shared_buffers'), current_setting('max_connections')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(format!(
            "PostgreSQL {version} (synchronous_commit={sync}, shared_buffers={buffers}, \
             max_connections={max_conn})"
        ))
    }
}
