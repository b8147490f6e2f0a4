-- pupsourcing event store schema for MySQL 8.0.29+ / MariaDB 10.6+ (InnoDB). Every statement is
-- idempotent.
--
-- Text that is matched exactly (event types, tags, aggregate types, bounded contexts) is stored
-- as VARBINARY: byte-exact comparisons (MySQL's default collations ignore case and accents, and
-- MariaDB's utf8mb4_bin still ignores trailing spaces), and index keys measured in bytes, so the
-- 2,048-byte ceiling of pupsourcing_core::Limits fits InnoDB's 3,072-byte key limit
-- (utf8mb4 VARCHAR(2048) would need 8,192). The store writes only valid UTF-8 there.
-- Timestamps are BIGINT microseconds since the Unix epoch, UTC: DATETIME only promises years
-- 1000 to 9999, and the log stores years 1 to 9999.
-- CHECK constraints are unnamed: MySQL 8 wants constraint names unique in a database, and two
-- stores may share one.
-- Stores made before the write became text statements (append/write.rs) also have the
-- procedures `<events>_write_rows` and, older still, `<events>_write`: nothing calls them any
-- more, new stores do not get them, and their names stay reserved (core's DERIVED_SUFFIXES).

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
    CHECK ((aggregate_type IS NULL) = (aggregate_id IS NULL)
        AND (aggregate_id IS NULL) = (aggregate_version IS NULL)),
    CHECK (aggregate_version > 0),
    CHECK (partition_hash BETWEEN 0 AND 4294967295)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The last position handed out: one row, bumped under its row lock by every append and held
-- until the append's transaction ends, so that commits happen in position order (see
-- append/mod.rs). Its committed value is the gap-free head.
CREATE TABLE IF NOT EXISTS {events_counter} (
    id            TINYINT NOT NULL PRIMARY KEY,
    last_position BIGINT  NOT NULL,
    CHECK (id = 1)
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
    CHECK (aggregate_version >= 0)
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

-- Projection and orchestrator tables. Their CHECK constraints are unnamed: MySQL 8 wants
-- constraint names unique in the whole database, and several stores may share one.

-- Projection checkpoints: one row per projection partition (key of count). Every in-scope event
-- of the partition at or below `position` is handled. A batch moves it by compare-and-set on the
-- position it started from, in the batch's transaction (checkpoint/mod.rs). Names are
-- VARBINARY: matched byte for byte, at most pupsourcing_core's 255 bytes.
CREATE TABLE IF NOT EXISTS {checkpoints} (
    projection_name VARBINARY(255) NOT NULL,
    partition_key   INT            NOT NULL,
    partition_count INT            NOT NULL,
    position        BIGINT         NOT NULL DEFAULT 0,
    -- microseconds since the Unix epoch, UTC, by the database clock
    updated_at      BIGINT         NOT NULL,
    -- the error that stopped the partition, until it next advances
    last_error      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    PRIMARY KEY (projection_name, partition_key, partition_count),
    CHECK (partition_count >= 1 AND partition_key >= 0
        AND partition_key < partition_count),
    CHECK (position >= 0)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- Events a projection set aside (its dead-letter policy), one row per projection and position.
CREATE TABLE IF NOT EXISTS {dead_letters} (
    projection_name VARBINARY(255) NOT NULL,
    partition_key   INT            NOT NULL,
    partition_count INT            NOT NULL,
    position        BIGINT         NOT NULL,
    event_id        BINARY(16)     NOT NULL,
    error           LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    attempts        BIGINT         NOT NULL,
    -- microseconds since the Unix epoch, UTC, by the database clock
    recorded_at     BIGINT         NOT NULL,
    PRIMARY KEY (projection_name, position),
    CHECK (partition_count >= 1 AND partition_key >= 0
        AND partition_key < partition_count),
    CHECK (attempts >= 0)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- Orchestrator coordination (coordination/mod.rs). Every time here is the database clock, in
-- microseconds since the Unix epoch, UTC: heartbeats and the stale cutoff are computed in SQL,
-- never by a worker's clock.

-- Orchestrator workers: one row per live worker, its heartbeat updated in place. Batch commits
-- never lock it (they lock the worker's row in the next table), so a long batch does not hold
-- up its worker's heartbeat.
CREATE TABLE IF NOT EXISTS {workers} (
    worker_id      VARBINARY(512) NOT NULL PRIMARY KEY,
    generation     BIGINT         NOT NULL,
    state          VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    started_at     BIGINT         NOT NULL,
    last_heartbeat BIGINT         NOT NULL,
    CHECK (state IN ('starting', 'ready', 'running', 'draining',
        'stopped'))
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- One row per registered worker, inserted with its workers row and deleted with it by the
-- foreign key (ON DELETE CASCADE: the delete of the workers row locks and deletes this row in
-- the same statement, whichever version or person deletes it). A batch commit locks its
-- worker's row here shared (advance_shard_in), so that a removal waits for the batches in
-- flight and a batch after a removal finds no row. Created by a migration run again over an
-- older schema: workers registered before it have no row here (see coordination/mod.rs).
-- Named after the workers table, whose rows these belong to (two orchestrator pools on one
-- events table, each with its own workers table, have one each), as is the foreign key: unique
-- per workers table and at most 63 bytes (core's MAX_WORKERS_LEN), where the name InnoDB would
-- make up, `<this table>_ibfk_1`, can exceed MariaDB's 64.
CREATE TABLE IF NOT EXISTS {worker_locks} (
    worker_id VARBINARY(512) NOT NULL PRIMARY KEY,
    CONSTRAINT {worker_locks_fk} FOREIGN KEY (worker_id) REFERENCES {workers} (worker_id)
        ON DELETE CASCADE
) ENGINE = InnoDB;

-- Orchestrator shards: shard `shard` of `shard_count` of a projection, owned by at most one
-- worker under an epoch bumped on every change of owner, with its own checkpoint. A batch
-- commits only if the row still names its owner and epoch (the fence).
CREATE TABLE IF NOT EXISTS {shards} (
    projection_name VARBINARY(255) NOT NULL,
    shard           INT            NOT NULL,
    shard_count     INT            NOT NULL,
    owner           VARBINARY(512) NULL,
    epoch           BIGINT         NOT NULL DEFAULT 0,
    position        BIGINT         NOT NULL DEFAULT 0,
    updated_at      BIGINT         NOT NULL,
    last_error      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    PRIMARY KEY (projection_name, shard_count, shard),
    CHECK (shard_count >= 1 AND shard >= 0 AND shard < shard_count),
    CHECK (epoch >= 0),
    CHECK (position >= 0)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- The Recreate generation and its phase: one row (id 1), moved by compare-and-set.
CREATE TABLE IF NOT EXISTS {recreate_lock} (
    id         TINYINT NOT NULL PRIMARY KEY,
    generation BIGINT  NOT NULL DEFAULT 0,
    phase      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'running',
    updated_at BIGINT  NOT NULL,
    CHECK (id = 1),
    CHECK (generation >= 0),
    CHECK (phase IN ('draining', 'running'))
) ENGINE = InnoDB;

INSERT INTO {recreate_lock} (id, generation, phase, updated_at) VALUES (1, 0, 'running', {now})
ON DUPLICATE KEY UPDATE id = id;
