-- pupsourcing event store schema for MySQL 8.0.16+ / MariaDB 10.6+ (InnoDB). Every statement is
-- idempotent.
--
-- Text that is matched exactly (event types, tags, aggregate types, bounded contexts) is stored
-- as VARBINARY: byte-exact comparisons (MySQL's default collations ignore case and accents, and
-- MariaDB's utf8mb4_bin still ignores trailing spaces), and index keys measured in bytes, so the
-- 2,048-byte ceiling of pupsourcing_core::Limits fits InnoDB's 3,072-byte key limit
-- (utf8mb4 VARCHAR(2048) would need 8,192). The store writes only valid UTF-8 there.
-- Timestamps are BIGINT microseconds since the Unix epoch, UTC: DATETIME only promises years
-- 1000 to 9999, and the log stores years 1 to 9999.

-- The global log. global_position is given by the store from {events_counter}, never by
-- AUTO_INCREMENT (whose values are not committed in order).
CREATE TABLE IF NOT EXISTS {events} (
    global_position   BIGINT         NOT NULL PRIMARY KEY,
    event_id          BINARY(16)     NOT NULL,
    event_type        VARBINARY(2048) NOT NULL,
    event_version     INT            NOT NULL,
    bounded_context   VARBINARY(2048) NULL,
    aggregate_type    VARBINARY(2048) NULL,
    aggregate_id      BINARY(16)     NULL,
    aggregate_version BIGINT         NULL,
    -- JSON array of the tags, in the order they were appended
    tags              LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    payload           LONGBLOB       NOT NULL,
    -- JSON text exactly as serialized (MariaDB's JSON type is LONGTEXT too; MySQL's would
    -- rewrite numbers and key order)
    metadata          LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    trace_id          BINARY(16)     NULL,
    correlation_id    BINARY(16)     NULL,
    causation_id      BINARY(16)     NULL,
    -- microseconds since the Unix epoch, UTC
    created_at        BIGINT         NOT NULL,
    -- pupsourcing_core::projection::partition_hash, computed at append
    partition_hash    BIGINT         NOT NULL,
    UNIQUE KEY event_id (event_id),
    UNIQUE KEY stream_version (aggregate_type, aggregate_id, aggregate_version),
    KEY type_position (event_type, global_position),
    CONSTRAINT stream_all_or_none CHECK ((aggregate_type IS NULL) = (aggregate_id IS NULL)
        AND (aggregate_id IS NULL) = (aggregate_version IS NULL)),
    CONSTRAINT positive_version CHECK (aggregate_version > 0),
    CONSTRAINT hash_range CHECK (partition_hash BETWEEN 0 AND 4294967295)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The last position handed out: one row, bumped under its row lock by every append and held
-- until the append's transaction ends, so that commits happen in position order (see
-- append/mod.rs). Its committed value is the gap-free head.
CREATE TABLE IF NOT EXISTS {events_counter} (
    id            TINYINT NOT NULL PRIMARY KEY,
    last_position BIGINT  NOT NULL,
    CONSTRAINT one_row CHECK (id = 1)
) ENGINE = InnoDB;

INSERT INTO {events_counter} (id, last_position) VALUES (1, 0)
ON DUPLICATE KEY UPDATE id = id;

-- One row per aggregate stream: its current version, locked and bumped by every append (O(1)).
CREATE TABLE IF NOT EXISTS {aggregate_heads} (
    aggregate_type    VARBINARY(2048) NOT NULL,
    aggregate_id      BINARY(16)     NOT NULL,
    aggregate_version BIGINT         NOT NULL,
    -- microseconds since the Unix epoch, UTC
    updated_at        BIGINT         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id),
    CONSTRAINT version_not_negative CHECK (aggregate_version >= 0)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- DCB tag index: one row per (tag, event), written with the events, so that a tag query or a
-- condition check is a range scan of one tag from a position. event_type lets an item of types
-- and tags be filtered without touching the events table.
CREATE TABLE IF NOT EXISTS {events_tags} (
    tag             VARBINARY(2048) NOT NULL,
    global_position BIGINT         NOT NULL,
    event_type      VARBINARY(2048) NOT NULL,
    PRIMARY KEY (tag, global_position)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- DCB boundary locks: one row per lock key (pupsourcing_core::dcb::lock_plan), locked shared
-- by appends and exclusively by conditions. Rows are created on first use, in a statement of
-- their own, and never deleted.
CREATE TABLE IF NOT EXISTS {events_locks} (
    lock_key BIGINT NOT NULL PRIMARY KEY
) ENGINE = InnoDB;

-- Commands recorded by the DCB command executor, in the transaction of the events they appended.
CREATE TABLE IF NOT EXISTS {commands} (
    command_id   BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    command_type VARBINARY(2048) NOT NULL,
    data         LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    metadata     LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    -- JSON array of the global positions the command appended
    positions    LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    -- microseconds since the Unix epoch, UTC
    created_at   BIGINT NOT NULL
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
