-- pupsourcing schema for PostgreSQL. Placeholders in braces are replaced by validated
-- identifiers before this file is applied or written out by the migration generator.
-- Every statement is idempotent, so applying it twice is harmless.

CREATE SCHEMA IF NOT EXISTS {schema};

-- Positions come from this sequence. Appends read its last_value to register an in-flight
-- marker before they allocate (see ARCHITECTURE.md, "Gap-free reads").
CREATE SEQUENCE IF NOT EXISTS {schema}.{events}_position_seq;

CREATE TABLE IF NOT EXISTS {schema}.{events} (
    global_position   BIGINT PRIMARY KEY,
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
    partition_hash    BIGINT NOT NULL,
    CONSTRAINT {events}_stream_all_or_none
        CHECK (num_nulls(aggregate_type, aggregate_id, aggregate_version) IN (0, 3)),
    CONSTRAINT {events}_stream_version UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

ALTER SEQUENCE {schema}.{events}_position_seq OWNED BY {schema}.{events}.global_position;

CREATE INDEX IF NOT EXISTS {events}_type_position ON {schema}.{events} (event_type, global_position);

-- The partition hash (pupsourcing_core::projection::partition_hash, a u32 as a non-negative
-- bigint), computed by the client at append and written by every append statement: projection
-- partition k of n reads the events with partition_hash % n = k. Events tables made before the
-- column existed get it here, and their existing events all hash to 0 (partition 0 of any
-- count). The default is dropped at once, so that a writer that does not know the column (an
-- older client, a hand-written insert) fails instead of silently filing events under 0. Only
-- run when the column is missing: ALTER TABLE locks the table exclusively, even when it has
-- nothing to do, which would make every later migration wait for (and hold up) the appends.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = '{schema}.{events}'::regclass
                      AND attname = 'partition_hash' AND NOT attisdropped) THEN
        ALTER TABLE {schema}.{events} ADD COLUMN partition_hash BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE {schema}.{events} ALTER COLUMN partition_hash DROP DEFAULT;
    END IF;
END
$do$;

-- One row per stream: its current version, read and bumped in O(1) by every append.
CREATE TABLE IF NOT EXISTS {schema}.{aggregate_heads} (
    aggregate_type    TEXT NOT NULL,
    aggregate_id      UUID NOT NULL,
    aggregate_version BIGINT NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- DCB tag index: one row per (tag, event), ordered by position, so that a tag query or a
-- condition check is an index range scan from a position, however many events carry the tag.
CREATE TABLE IF NOT EXISTS {schema}.{events}_tags (
    tag             TEXT NOT NULL,
    global_position BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    PRIMARY KEY (tag, global_position)
);

-- Commands recorded by the DCB command executor, in the transaction of their events.
CREATE TABLE IF NOT EXISTS {schema}.{commands} (
    command_id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_type TEXT NOT NULL,
    data         JSONB NOT NULL,
    metadata     JSONB,
    positions    BIGINT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Projection checkpoints: one row per projection partition (key of count). Every in-scope
-- event of the partition at or below `position` is handled. A batch moves it by
-- compare-and-set on the position it started from, in the batch's transaction (checkpoint/mod.rs).
CREATE TABLE IF NOT EXISTS {schema}.{checkpoints} (
    projection_name TEXT NOT NULL,
    partition_key   INT NOT NULL,
    partition_count INT NOT NULL,
    position        BIGINT NOT NULL DEFAULT 0,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    PRIMARY KEY (projection_name, partition_key, partition_count)
);

-- Events a projection set aside (its dead-letter policy), one row per projection and position.
CREATE TABLE IF NOT EXISTS {schema}.{dead_letters} (
    projection_name TEXT NOT NULL,
    partition_key   INT NOT NULL,
    partition_count INT NOT NULL,
    position        BIGINT NOT NULL,
    event_id        UUID NOT NULL,
    error           TEXT NOT NULL,
    attempts        INT NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection_name, position)
);

-- Orchestrator workers: one row per live worker, its heartbeat on the database clock. A worker
-- whose heartbeat is older than the stale threshold is removed and its shards released
-- (coordination/mod.rs).
CREATE TABLE IF NOT EXISTS {schema}.{workers} (
    worker_id      TEXT PRIMARY KEY,
    generation     BIGINT NOT NULL,
    state          TEXT NOT NULL
                   CHECK (state IN ('starting', 'ready', 'running', 'draining', 'stopped')),
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Orchestrator shards: shard `shard` of `shard_count` of a projection, owned by at most one
-- worker under an epoch bumped on every change of owner, with its own checkpoint. A batch
-- commits only if the row still names its owner and epoch (the fence).
CREATE TABLE IF NOT EXISTS {schema}.{shards} (
    projection_name TEXT NOT NULL,
    shard           INT NOT NULL,
    shard_count     INT NOT NULL,
    owner           TEXT,
    epoch           BIGINT NOT NULL DEFAULT 0,
    position        BIGINT NOT NULL DEFAULT 0,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    PRIMARY KEY (projection_name, shard_count, shard)
);

-- The Recreate generation and its phase: one row, moved by compare-and-set.
CREATE TABLE IF NOT EXISTS {schema}.{recreate_lock} (
    id         INT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL DEFAULT 0,
    phase      TEXT NOT NULL DEFAULT 'running' CHECK (phase IN ('draining', 'running')),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO {schema}.{recreate_lock} (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

-- The append function before it took partition hashes: a call with the old argument list
-- fails here rather than writing events without a hash.
DROP FUNCTION IF EXISTS {schema}.{events}_append(TEXT, UUID, BIGINT, UUID[], TEXT[], INT[],
    TEXT[], TEXT[], INT[], BYTEA[], TEXT[], UUID[], UUID[], UUID[], TIMESTAMPTZ[], INT[], INT[],
    BOOL[], BOOL, BOOL, BIGINT, TEXT[], INT[], TEXT[], INT[]);

-- Appends a batch in a single round trip: to an aggregate stream (p_aggregate_type set) or as
-- DCB events, optionally under an append condition.
--
-- p_expected: NULL = any version, 0 = the stream must not exist, n = exactly version n.
-- p_partition_hashes: each event's partition hash, computed by the client.
-- p_lock_*: the sorted advisory lock plan (pupsourcing_core::dcb::lock_plan), as 32-bit halves.
-- p_check: whether a condition applies; p_check_all: its query matches all events; otherwise
-- its items are given as flattened types/tags with per-item counts. p_after: exclusive.
--
-- Outcomes (o_outcome): 'appended'; 'replayed' (every event id was already stored: nothing is
-- written and the original positions and versions are returned); 'partial_duplicate' (some ids
-- are stored: o_actual holds how many, o_duplicate one of them); 'conflict' (o_actual holds the
-- stream's version); 'condition_failed'; 'isolation' (a condition needs READ COMMITTED). Only 'appended' writes anything, so a rejection leaves the caller's
-- transaction usable.
CREATE OR REPLACE FUNCTION {schema}.{events}_append(
    p_aggregate_type   TEXT,
    p_aggregate_id     UUID,
    p_expected         BIGINT,
    p_event_ids        UUID[],
    p_event_types      TEXT[],
    p_event_versions   INT[],
    p_contexts         TEXT[],
    p_tags             TEXT[],
    p_tag_counts       INT[],
    p_payloads         BYTEA[],
    p_metadata         TEXT[],
    p_trace_ids        UUID[],
    p_correlation_ids  UUID[],
    p_causation_ids    UUID[],
    p_created_at       TIMESTAMPTZ[],
    p_partition_hashes BIGINT[],
    p_lock_hi          INT[],
    p_lock_lo          INT[],
    p_lock_exclusive   BOOL[],
    p_check            BOOL,
    p_check_all        BOOL,
    p_after            BIGINT,
    p_cond_types       TEXT[],
    p_cond_type_counts INT[],
    p_cond_tags        TEXT[],
    p_cond_tag_counts  INT[],
    OUT o_outcome      TEXT,
    OUT o_actual       BIGINT,
    OUT o_positions    BIGINT[],
    OUT o_versions     BIGINT[],
    OUT o_duplicate    UUID,
    OUT o_first        BIGINT,
    OUT o_first_version BIGINT
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_count       INT := cardinality(p_event_ids);
    v_new_version BIGINT;
    v_first       BIGINT;
    v_replay      RECORD;
BEGIN
    IF p_check AND current_setting('transaction_isolation') <> 'read committed' THEN
        -- The check below must see transactions that committed while we waited for the locks:
        -- only READ COMMITTED takes a fresh snapshot per statement. (SERIALIZABLE does not
        -- help: the writers we waited for run at READ COMMITTED, outside its conflict checks.)
        o_outcome := 'isolation';
        RETURN;
    END IF;

    -- Boundary locks, in the caller's sorted order, before any row lock (see dcb/locks.rs in
    -- the core crate). A `try` is a cheap expression; only a lock held by another transaction
    -- makes us fall back to waiting for it.
    FOR i IN 1 .. coalesce(cardinality(p_lock_hi), 0) LOOP
        IF p_lock_exclusive[i] THEN
            IF NOT pg_try_advisory_xact_lock(p_lock_hi[i], p_lock_lo[i]) THEN
                PERFORM pg_advisory_xact_lock(p_lock_hi[i], p_lock_lo[i]);
            END IF;
        ELSIF NOT pg_try_advisory_xact_lock_shared(p_lock_hi[i], p_lock_lo[i]) THEN
            PERFORM pg_advisory_xact_lock_shared(p_lock_hi[i], p_lock_lo[i]);
        END IF;
    END LOOP;

    IF p_aggregate_type IS NOT NULL THEN
        v_new_version := {schema}.{events}_bump_head(p_aggregate_type, p_aggregate_id, p_expected, v_count);
        IF v_new_version IS NULL THEN
            o_outcome := 'conflict';
            SELECT h.aggregate_version INTO o_actual FROM {schema}.{aggregate_heads} h
             WHERE h.aggregate_type = p_aggregate_type AND h.aggregate_id = p_aggregate_id;
            o_actual := coalesce(o_actual, 0);
        END IF;
    END IF;

    -- A fresh statement after the locks: it sees every matching event committed so far, and no
    -- matching event can commit until this transaction ends.
    IF o_outcome IS NULL AND p_check AND {schema}.{events}_condition_matches(
            p_check_all, coalesce(p_after, 0), p_cond_types, p_cond_type_counts, p_cond_tags,
            p_cond_tag_counts) THEN
        o_outcome := 'condition_failed';
    END IF;

    IF o_outcome IS NOT NULL THEN
        -- A retry of a stored batch is a replay even when its check now fails (we may even have
        -- waited on the very writer that stored it).
        SELECT s.* INTO v_replay FROM {schema}.{events}_stored(p_event_ids) s;
        IF v_replay.outcome = 'replayed' THEN
            o_outcome := v_replay.outcome;
            o_positions := v_replay.positions;
            o_versions := v_replay.versions;
        END IF;
        RETURN;
    END IF;

    -- The positions, then the events and their tag-index rows in one statement, in a block of
    -- their own: a stored event id fails the insert on the unique index, which rolls back just
    -- this block (rows, marker), and the batch is reported as a retry. (A plain insert: ON
    -- CONFLICT DO NOTHING would cost every event a speculative insertion, ~20% of a batch.)
    BEGIN
        v_first := {schema}.{events}_allocate(v_count);
        WITH inserted AS (
            INSERT INTO {schema}.{events} (global_position, event_id, event_type, event_version,
                bounded_context, aggregate_type, aggregate_id, aggregate_version, tags, payload,
                metadata, trace_id, correlation_id, causation_id, created_at, partition_hash)
            SELECT v_first + i.ord - 1, i.id, i.event_type, i.event_version, i.context,
                   p_aggregate_type, p_aggregate_id, v_new_version - v_count + i.ord,
                   i.tags, i.payload, i.metadata::json, i.trace_id, i.correlation_id,
                   i.causation_id, i.created_at, i.partition_hash
              FROM ROWS FROM (unnest(p_event_ids), unnest(p_event_types),
                              unnest(p_event_versions), unnest(p_contexts), unnest(p_payloads),
                              unnest(p_metadata), unnest(p_trace_ids), unnest(p_correlation_ids),
                              unnest(p_causation_ids), unnest(p_created_at),
                              unnest(p_partition_hashes),
                              {schema}.{events}_tags_by_event(p_tags, p_tag_counts))
                   WITH ORDINALITY AS i(id, event_type, event_version, context, payload,
                                        metadata, trace_id, correlation_id, causation_id,
                                        created_at, partition_hash, tags, ord)
            RETURNING global_position, event_type, tags
        )
        INSERT INTO {schema}.{events}_tags (tag, global_position, event_type)
        SELECT unnest(e.tags), e.global_position, e.event_type FROM inserted e;
    EXCEPTION WHEN unique_violation THEN
        -- Idempotency: some or all ids are stored (the batch is a retry, or mixes stored and
        -- new ids). Undo the head bump too, and report it.
        IF p_aggregate_type IS NOT NULL THEN
            PERFORM {schema}.{events}_unbump_head(p_aggregate_type, p_aggregate_id, v_count, v_new_version);
        END IF;
        SELECT * INTO o_outcome, o_actual, o_positions, o_versions, o_duplicate
          FROM {schema}.{events}_stored(p_event_ids);
        IF o_outcome IS NULL THEN
            RAISE; -- not an event id: let the caller see it
        END IF;
        RETURN;
    END;

    o_outcome := 'appended';
    -- Tells EventStore::commit that this transaction appended, so that its commit wakes
    -- projections (notify.rs); transaction-local, undone with a rolled-back savepoint.
    PERFORM set_config('pupsourcing.appended', 'on', true);
    o_first := v_first;
    o_first_version := v_new_version - v_count + 1;
END
$fn$;

-- Each event's tags, one row per event in batch order, from the flattened tag array and the
-- per-event counts. Linear, and without a join (the append function's plan is generic, with
-- array sizes unknown, and a join could become a nested loop over both arrays): each tag is
-- zipped with its event's number, and the tags are grouped by it, with an empty row per event
-- so that an event without tags gets '{}'. (Slicing the array per event instead walks it from
-- its start for every event: time quadratic in the batch's tags.)
-- The general case costs about 4.5 us per event (the grouping, and a sort per event for its
-- array_agg), 0.45 ms of a 100-event batch; the two common shapes take a shortcut (0.05 ms):
-- every event with exactly one tag (its tag is the tag of the same number), and no tags at all.
CREATE OR REPLACE FUNCTION {schema}.{events}_tags_by_event(p_tags TEXT[], p_counts INT[])
RETURNS SETOF TEXT[] LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    -- (plpgsql: its plan is cached, where a SQL function's body is planned on every call.)
    IF cardinality(p_tags) = 0 AND 0 = ALL (p_counts) THEN
        RETURN QUERY SELECT '{}'::TEXT[] FROM generate_series(1, cardinality(p_counts));
        RETURN;
    END IF;
    IF cardinality(p_tags) = cardinality(p_counts) AND 1 = ALL (p_counts) THEN
        RETURN QUERY SELECT ARRAY[t.tag] FROM unnest(p_tags) WITH ORDINALITY AS t(tag, n)
                      ORDER BY t.n;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT coalesce(array_agg(z.tag ORDER BY z.n) FILTER (WHERE z.n IS NOT NULL), '{}')
      FROM (SELECT t.owner, t.tag, t.n
              FROM unnest(p_tags, ARRAY(SELECT u.ord
                                          FROM unnest(p_counts) WITH ORDINALITY AS u(count, ord),
                                               generate_series(1, u.count)
                                         ORDER BY u.ord))
                   WITH ORDINALITY AS t(tag, owner, n)
            UNION ALL
            SELECT e.owner, NULL, NULL
              FROM generate_series(1, coalesce(cardinality(p_counts), 0)::bigint) AS e(owner)) z
     GROUP BY z.owner
     ORDER BY z.owner;
END
$fn$;

-- The stream head step: locks the head row, checks the expected version and bumps it, in one
-- statement per case. Returns the new version, or NULL when the expected version does not hold
-- (nothing is changed then).
CREATE OR REPLACE FUNCTION {schema}.{events}_bump_head(
    p_aggregate_type TEXT, p_aggregate_id UUID, p_expected BIGINT, p_count INT
) RETURNS BIGINT LANGUAGE plpgsql AS $fn$
DECLARE
    v_new_version BIGINT;
BEGIN
    IF p_expected IS NULL THEN
        INSERT INTO {schema}.{aggregate_heads} AS h (aggregate_type, aggregate_id, aggregate_version)
        VALUES (p_aggregate_type, p_aggregate_id, p_count)
        ON CONFLICT (aggregate_type, aggregate_id)
        DO UPDATE SET aggregate_version = h.aggregate_version + p_count, updated_at = now()
        RETURNING h.aggregate_version INTO v_new_version;
    ELSIF p_expected = 0 THEN
        INSERT INTO {schema}.{aggregate_heads} (aggregate_type, aggregate_id, aggregate_version)
        VALUES (p_aggregate_type, p_aggregate_id, p_count)
        ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING
        RETURNING aggregate_version INTO v_new_version;
    ELSE
        -- Under READ COMMITTED a concurrent writer's committed bump is re-checked here, so the
        -- loser of a race sees the new version and matches nothing.
        UPDATE {schema}.{aggregate_heads} h
           SET aggregate_version = h.aggregate_version + p_count, updated_at = now()
         WHERE h.aggregate_type = p_aggregate_type AND h.aggregate_id = p_aggregate_id
           AND h.aggregate_version = p_expected
        RETURNING h.aggregate_version INTO v_new_version;
    END IF;
    RETURN v_new_version;
END
$fn$;

-- Undoes {events}_bump_head within the same transaction (the row lock is still held): back to
-- the previous version, or no row when the bump created it.
CREATE OR REPLACE FUNCTION {schema}.{events}_unbump_head(
    p_aggregate_type TEXT, p_aggregate_id UUID, p_count INT, p_new_version BIGINT
) RETURNS VOID LANGUAGE sql AS $fn$
    DELETE FROM {schema}.{aggregate_heads}
     WHERE aggregate_type = p_aggregate_type AND aggregate_id = p_aggregate_id
       AND p_new_version = p_count;
    UPDATE {schema}.{aggregate_heads} SET aggregate_version = aggregate_version - p_count
     WHERE aggregate_type = p_aggregate_type AND aggregate_id = p_aggregate_id
       AND p_new_version > p_count;
$fn$;

-- How many of p_event_ids are stored: no row when none; 'replayed' with their original positions
-- and versions when all are; 'partial_duplicate' with the count and the first stored id when
-- some are.
CREATE OR REPLACE FUNCTION {schema}.{events}_stored(p_event_ids UUID[])
RETURNS TABLE (outcome TEXT, actual BIGINT, positions BIGINT[], versions BIGINT[], duplicate UUID)
LANGUAGE sql AS $fn$
    SELECT CASE WHEN count(*) = cardinality(p_event_ids) THEN 'replayed' ELSE 'partial_duplicate' END,
           count(*),
           array_agg(e.global_position ORDER BY i.ord),
           array_agg(e.aggregate_version ORDER BY i.ord),
           (array_agg(e.event_id ORDER BY i.ord))[1]
      FROM unnest(p_event_ids) WITH ORDINALITY AS i(id, ord)
      JOIN {schema}.{events} e ON e.event_id = i.id
    HAVING count(*) > 0
$fn$;

-- Whether any event after p_after matches the condition's query (p_all: every event; otherwise
-- the items given as flattened types/tags with per-item counts, OR-ed). Each item is an index
-- range scan from p_after: by its first tag on the tag index, or by type.
CREATE OR REPLACE FUNCTION {schema}.{events}_condition_matches(
    p_all BOOL, p_after BIGINT, p_types TEXT[], p_type_counts INT[], p_tags TEXT[],
    p_tag_counts INT[]
) RETURNS BOOL LANGUAGE plpgsql AS $fn$
DECLARE
    v_types    TEXT[];
    v_tags     TEXT[];
    v_type_end INT := 0;
    v_tag_end  INT := 0;
BEGIN
    IF p_all THEN
        RETURN EXISTS (SELECT 1 FROM {schema}.{events} e WHERE e.global_position > p_after);
    END IF;
    FOR i IN 1 .. coalesce(cardinality(p_type_counts), 0) LOOP
        v_types := p_types[v_type_end + 1 : v_type_end + p_type_counts[i]];
        v_tags := p_tags[v_tag_end + 1 : v_tag_end + p_tag_counts[i]];
        v_type_end := v_type_end + p_type_counts[i];
        v_tag_end := v_tag_end + p_tag_counts[i];
        IF p_tag_counts[i] = 0 THEN
            IF EXISTS (SELECT 1 FROM {schema}.{events} e
                        WHERE e.event_type = ANY (v_types) AND e.global_position > p_after) THEN
                RETURN TRUE;
            END IF;
        ELSIF EXISTS (SELECT 1 FROM {schema}.{events}_tags t
                        JOIN {schema}.{events} e ON e.global_position = t.global_position
                       WHERE t.tag = v_tags[1] AND t.global_position > p_after
                         AND (p_type_counts[i] = 0 OR t.event_type = ANY (v_types))
                         AND e.tags @> v_tags) THEN
            RETURN TRUE;
        END IF;
    END LOOP;
    RETURN FALSE;
END
$fn$;

-- Registers this transaction as an in-flight writer, then takes one contiguous block of
-- p_count positions and returns its first position.
--
-- The marker is a shared transaction-level advisory lock whose key holds the sequence value
-- read *before* allocating: every position this transaction gets is above it, and readers
-- cap their reads at the lowest marker they see (see {events}_safe_head). The lock is released
-- at commit or rollback, after the rows became visible.
--
-- Contiguity: a batch allocates under a short exclusive session lock (released at once, also on
-- error), while single-event appends share it, so no allocation interleaves with a batch's.
CREATE OR REPLACE FUNCTION {schema}.{events}_allocate(p_count INT) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
DECLARE
    v_first BIGINT;
    v_marker BIGINT := ({marker_tag}::bigint << 47)
        | coalesce(pg_sequence_last_value('{schema}.{events}_position_seq'), 0);
BEGIN
    -- Markers are only ever taken shared, so the `try` succeeds; the fallback is for safety.
    IF NOT pg_try_advisory_xact_lock_shared(v_marker) THEN
        PERFORM pg_advisory_xact_lock_shared(v_marker);
    END IF;
    BEGIN
        IF p_count = 1 THEN
            IF NOT pg_try_advisory_lock_shared({marker_tag}, 0) THEN
                PERFORM pg_advisory_lock_shared({marker_tag}, 0);
            END IF;
            v_first := nextval('{schema}.{events}_position_seq');
            IF NOT pg_advisory_unlock_shared({marker_tag}, 0) THEN
                RAISE EXCEPTION 'allocation lock was not held';
            END IF;
        ELSE
            PERFORM pg_advisory_lock({marker_tag}, 0);
            v_first := nextval('{schema}.{events}_position_seq');
            PERFORM setval('{schema}.{events}_position_seq', v_first + p_count - 1);
            PERFORM pg_advisory_unlock({marker_tag}, 0);
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        -- Never leak the session-level allocation lock: it would stall every writer. Which
        -- mode is held is unknown here; releasing one that is not held only warns.
        PERFORM pg_advisory_unlock_shared({marker_tag}, 0);
        PERFORM pg_advisory_unlock({marker_tag}, 0);
        RAISE;
    END;
    RETURN v_first;
END
$fn$;

-- The gap-free head: the highest position below which no transaction can still commit an event.
-- In three statements, in this order:
--   1. the sequence value: a writer that registers after this allocates above it;
--   2. this store's in-flight markers, with the virtual transaction holding each;
--   3. the live transactions. A transaction makes its commit visible, then releases its own
--      virtualxid lock, then its advisory locks; so a marker whose holder no longer holds its
--      virtualxid lock belongs to a transaction whose rows are already visible (or rolled back),
--      and must not hold readers back. (Without this, a committed writer that is descheduled
--      between the two releases stalls readers, which a retrying command executor can run
--      into.) Prepared transactions ('-1/...') hold no virtualxid lock, so they count as live.
-- Reading the live transactions after the markers is what makes this safe: a marker seen in 2
-- whose holder is missing in 3 has ended.
--
-- With p_skip_own (reads in a caller's transaction), markers of the calling session are
-- skipped: they belong to its own open transaction, whose events its next statements see
-- anyway, so a transaction reads its own appends. Such a head is only gap-free for that
-- transaction until it ends (others cannot see its events yet), so it is never cached. The
-- store's own reads never skip them: a pooled session left inside a transaction by accident
-- then holds its own reads back instead of publishing a head above uncommitted events.
--
-- The head of a DCB query (p_keys: the query's keys, dcb::query_keys; p_global: the global key)
-- only waits for the in-flight appends that could add an event matching the query: those
-- holding one of its keys, or the global key exclusively (a collapsed lock plan). Every append
-- takes its boundary locks before it registers its marker and holds both until it ends, so a
-- marker whose holder holds none of these keys in the same pg_locks snapshot belongs to an
-- append whose events cannot match: skipping it cannot make the reader (or a condition using
-- this head as `after`) miss a matching event. Such a head is only gap-free for the query.
-- Without keys (p_keys NULL) every marker counts: the head of the whole log.
CREATE OR REPLACE FUNCTION {schema}.{events}_query_head(p_keys BIGINT[], p_global BIGINT,
                                                        p_skip_own BOOL)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_sequence BIGINT;
    v_markers  BIGINT[];
    v_holders  TEXT[];
    v_lowest   BIGINT;
    v_cheap    BIGINT;
    v_global   BOOL := FALSE;
    v_free     BOOL;
    v_taken    INT := 0;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO v_sequence
      FROM {schema}.{events}_position_seq;
    IF v_sequence = 0 THEN
        RETURN 0;
    END IF;
    -- First the cheap answer, for the store's own reads (p_skip_own false; a caller's
    -- transaction uses the scan). The query's keys are taken exclusively and the global key
    -- shared, without waiting: when every one is granted, no append that could add a matching
    -- event is in flight (each holds one of these keys, or the global key exclusively, from
    -- before it takes a position until it ends), and none can take a position while we hold
    -- them. So every matching append with a position at or below the sequence, read while we
    -- hold them, had ended before we took them: that value is a head for the query, with no
    -- pg_locks scan. A key held by someone else sends the head to the scan below.
    -- The keys are session locks, released before returning (also on error or cancel), not
    -- transaction locks: on a pooled session left inside a transaction by accident, these would
    -- last until that transaction ends and stall every matching writer until then (test
    -- `a_read_on_a_poisoned_connection_keeps_no_writer_waiting`). Only tried before this
    -- transaction wrote anything: a session's own locks never conflict with its tries, so such
    -- a session whose own append there is uncommitted must count its own markers (the scan does).
    IF p_keys IS NOT NULL AND p_global IS NOT NULL AND NOT p_skip_own
       AND txid_current_if_assigned() IS NULL THEN
        BEGIN
            v_global := pg_try_advisory_lock_shared((p_global >> 32)::int,
                                                    ((p_global << 32) >> 32)::int);
            v_free := v_global;
            IF v_free THEN
                -- Stops at the first key held elsewhere: the rest need not be locked.
                FOR i IN 1 .. cardinality(p_keys) LOOP
                    v_free := pg_try_advisory_lock((p_keys[i] >> 32)::int,
                                                   ((p_keys[i] << 32) >> 32)::int);
                    EXIT WHEN NOT v_free;
                    v_taken := i;
                END LOOP;
            END IF;
            IF v_free THEN
                SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO v_cheap
                  FROM {schema}.{events}_position_seq;
            END IF;
            FOR i IN 1 .. v_taken LOOP
                PERFORM pg_advisory_unlock((p_keys[i] >> 32)::int,
                                           ((p_keys[i] << 32) >> 32)::int);
            END LOOP;
            IF v_global THEN
                PERFORM pg_advisory_unlock_shared((p_global >> 32)::int,
                                                  ((p_global << 32) >> 32)::int);
            END IF;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            -- Which keys are held is unknown here: release every one this may have taken
            -- (unlocking a key not held only warns). A leaked session lock would stall every
            -- matching writer for the session's life.
            PERFORM pg_advisory_unlock((k >> 32)::int, ((k << 32) >> 32)::int)
               FROM unnest(p_keys) AS k;
            PERFORM pg_advisory_unlock_shared((p_global >> 32)::int,
                                              ((p_global << 32) >> 32)::int);
            RAISE;
        END;
        IF v_cheap IS NOT NULL THEN
            RETURN v_cheap;
        END IF;
    END IF;
    -- One pg_locks snapshot: each holder's lowest marker and whether it holds a query key.
    SELECT array_agg(h.marker), array_agg(h.holder)
      INTO v_markers, v_holders
      FROM (SELECT l.virtualtransaction AS holder,
                   min(CASE WHEN l.objsubid = 1 AND (l.classid::bigint >> 15) = {marker_tag}
                            THEN ((l.classid::bigint << 32) | l.objid::bigint) & 140737488355327
                       END) AS marker,
                   bool_or(l.objsubid = 2 AND p_keys IS NOT NULL
                           AND (((l.classid::bigint << 32) | l.objid::bigint) = ANY (p_keys)
                                OR (((l.classid::bigint << 32) | l.objid::bigint) = p_global
                                    AND l.mode = 'ExclusiveLock'))) AS holds_key
              FROM pg_locks l
             WHERE l.locktype = 'advisory'
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND NOT (p_skip_own AND l.pid IS NOT DISTINCT FROM pg_backend_pid())
             GROUP BY l.virtualtransaction) h
     WHERE h.marker IS NOT NULL AND (p_keys IS NULL OR h.holds_key);
    IF v_markers IS NULL THEN
        RETURN v_sequence;
    END IF;
    SELECT min(m.marker) INTO v_lowest
      FROM unnest(v_markers, v_holders) AS m(marker, holder)
     WHERE m.holder LIKE '-1/%'
        OR m.holder IN (SELECT x.virtualxid FROM pg_locks x WHERE x.locktype = 'virtualxid');
    RETURN least(v_sequence, coalesce(v_lowest, v_sequence));
END
$fn$;

CREATE OR REPLACE FUNCTION {schema}.{events}_safe_head() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $fn$
    SELECT {schema}.{events}_query_head(NULL, NULL, FALSE)
$fn$;
