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
