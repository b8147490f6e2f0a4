-- pupsourcing event store schema for SQLite. Every statement is idempotent.
-- Requires SQLite 3.38 or later (STRICT tables, JSON functions, unhex in the append path: 3.41).

-- The global log. global_position is the rowid; AUTOINCREMENT keeps a position from ever being
-- reused, even if the newest events were deleted by hand.
CREATE TABLE IF NOT EXISTS {events} (
    global_position   INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),
    event_type        TEXT    NOT NULL,
    event_version     INTEGER NOT NULL,
    bounded_context   TEXT,
    aggregate_type    TEXT,
    aggregate_id      BLOB    CHECK (length(aggregate_id) = 16),
    aggregate_version INTEGER CHECK (aggregate_version > 0),
    tags              TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'),
    payload           BLOB    NOT NULL,
    metadata          TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    trace_id          BLOB    CHECK (length(trace_id) = 16),
    correlation_id    BLOB    CHECK (length(correlation_id) = 16),
    causation_id      BLOB    CHECK (length(causation_id) = 16),
    -- microseconds since the Unix epoch, UTC
    created_at        INTEGER NOT NULL,
    -- the event's 32-bit partition hash (pupsourcing_core::projection::partition_hash), computed
    -- at append; a projection partition k of n reads the events with partition_hash % n = k.
    -- A database created before this column existed gets it from migrate, with 0 for the events
    -- stored until then (see migrate/add_partition_hash.sql).
    partition_hash    INTEGER NOT NULL CHECK (partition_hash BETWEEN 0 AND 4294967295),
    -- an event belongs to a stream with all three columns, or to none
    CHECK ((aggregate_type IS NULL) = (aggregate_id IS NULL)
       AND (aggregate_id IS NULL) = (aggregate_version IS NULL)),
    UNIQUE (aggregate_type, aggregate_id, aggregate_version)
) STRICT;

CREATE INDEX IF NOT EXISTS {events_type_index} ON {events} (event_type, global_position);

-- One row per aggregate stream: its current version, read and bumped by every append (O(1)).
CREATE TABLE IF NOT EXISTS {aggregate_heads} (
    aggregate_type    TEXT    NOT NULL,
    aggregate_id      BLOB    NOT NULL CHECK (length(aggregate_id) = 16),
    aggregate_version INTEGER NOT NULL CHECK (aggregate_version >= 0),
    -- microseconds since the Unix epoch, UTC
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
) STRICT, WITHOUT ROWID;

-- DCB tag index: one row per (tag, event), filled by every append (stream or DCB) in the same
-- write as the events, so that a tag query or a condition check is a range scan of one tag from
-- a position, however many events carry the tag. event_type lets an item of types and tags be
-- filtered without touching the events table.
CREATE TABLE IF NOT EXISTS {events_tags} (
    tag             TEXT    NOT NULL,
    global_position INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    PRIMARY KEY (tag, global_position)
) STRICT, WITHOUT ROWID;

-- Commands recorded by the DCB command executor, in the transaction of the events they appended.
CREATE TABLE IF NOT EXISTS {commands} (
    command_id   INTEGER PRIMARY KEY,
    command_type TEXT    NOT NULL,
    data         TEXT    NOT NULL CHECK (json_valid(data)),
    metadata     TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    -- JSON array of the global positions the command appended
    positions    TEXT    NOT NULL CHECK (json_type(positions) = 'array'),
    -- microseconds since the Unix epoch, UTC
    created_at   INTEGER NOT NULL
) STRICT;

-- Projection checkpoints: one row per projection partition (key of count), holding the position
-- up to which the partition has handled every in-scope event.
CREATE TABLE IF NOT EXISTS {checkpoints} (
    projection_name TEXT    NOT NULL,
    partition_key   INTEGER NOT NULL CHECK (partition_key >= 0 AND partition_key < partition_count),
    partition_count INTEGER NOT NULL CHECK (partition_count BETWEEN 1 AND 4294967295),
    position        INTEGER NOT NULL DEFAULT 0 CHECK (position >= 0),
    -- microseconds since the Unix epoch, UTC
    updated_at      INTEGER NOT NULL,
    -- the error that stopped the partition, until it next advances
    last_error      TEXT,
    PRIMARY KEY (projection_name, partition_key, partition_count)
) STRICT, WITHOUT ROWID;

-- Events a projection set aside (dead-letter policy), one per projection and position.
CREATE TABLE IF NOT EXISTS {dead_letters} (
    projection_name TEXT    NOT NULL,
    partition_key   INTEGER NOT NULL CHECK (partition_key >= 0 AND partition_key < partition_count),
    partition_count INTEGER NOT NULL CHECK (partition_count BETWEEN 1 AND 4294967295),
    position        INTEGER NOT NULL,
    event_id        BLOB    NOT NULL CHECK (length(event_id) = 16),
    error           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    -- microseconds since the Unix epoch, UTC
    recorded_at     INTEGER NOT NULL,
    PRIMARY KEY (projection_name, position)
) STRICT, WITHOUT ROWID;

-- Orchestrator coordination (see the coordination module). Every timestamp here is microseconds
-- since the Unix epoch, UTC, by SQLite's own clock (the database clock): heartbeats and the
-- stale-worker cutoff are computed in SQL, never by a worker's clock.

-- Orchestrator workers: one row per live worker, its heartbeat moved by the worker itself.
CREATE TABLE IF NOT EXISTS {workers} (
    worker_id      TEXT    NOT NULL PRIMARY KEY CHECK (worker_id <> ''),
    generation     INTEGER NOT NULL,
    state          TEXT    NOT NULL
                   CHECK (state IN ('starting', 'ready', 'running', 'draining', 'stopped')),
    started_at     INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Orchestrator shards: shard k of count of a projection, its owner (NULL: unowned), the epoch
-- bumped on every change of owner (the fence every batch commit checks) and its checkpoint.
CREATE TABLE IF NOT EXISTS {shards} (
    projection_name TEXT    NOT NULL,
    shard           INTEGER NOT NULL CHECK (shard >= 0 AND shard < shard_count),
    shard_count     INTEGER NOT NULL CHECK (shard_count BETWEEN 1 AND 2147483647),
    owner           TEXT,
    epoch           INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    position        INTEGER NOT NULL DEFAULT 0 CHECK (position >= 0),
    updated_at      INTEGER NOT NULL,
    last_error      TEXT,
    PRIMARY KEY (projection_name, shard_count, shard)
) STRICT, WITHOUT ROWID;

-- The Recreate generation and its phase: one row (id 1), created here at generation 0, running.
CREATE TABLE IF NOT EXISTS {recreate_lock} (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0),
    phase      TEXT    NOT NULL DEFAULT 'running' CHECK (phase IN ('draining', 'running')),
    updated_at INTEGER NOT NULL
) STRICT;

INSERT INTO {recreate_lock} (id, generation, phase, updated_at)
VALUES (1, 0, 'running', {now})
ON CONFLICT (id) DO NOTHING;
