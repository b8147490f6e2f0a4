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
    metadata          JSONB,
    trace_id          UUID,
    correlation_id    UUID,
    causation_id      UUID,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT {events}_stream_all_or_none
        CHECK (num_nulls(aggregate_type, aggregate_id, aggregate_version) IN (0, 3)),
    CONSTRAINT {events}_stream_version UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

ALTER SEQUENCE {schema}.{events}_position_seq OWNED BY {schema}.{events}.global_position;

CREATE INDEX IF NOT EXISTS {events}_type_position ON {schema}.{events} (event_type, global_position);

-- One row per stream: its current version, read and bumped in O(1) by every append.
CREATE TABLE IF NOT EXISTS {schema}.{aggregate_heads} (
    aggregate_type    TEXT NOT NULL,
    aggregate_id      UUID NOT NULL,
    aggregate_version BIGINT NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Appends a batch to one aggregate stream in a single round trip.
--
-- p_expected: NULL = any version, 0 = the stream must not exist, n = exactly version n.
-- Outcomes (o_outcome): 'appended'; 'replayed' (every event id was already stored: nothing is
-- written and the original positions and versions are returned); 'partial_duplicate' (some ids
-- are stored: o_actual holds how many, o_duplicate one of them); 'conflict' (o_actual holds the
-- stream's version). Only 'appended' writes anything, so a rejection leaves the caller's
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
    OUT o_outcome      TEXT,
    OUT o_actual       BIGINT,
    OUT o_positions    BIGINT[],
    OUT o_versions     BIGINT[],
    OUT o_duplicate    UUID
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_count       INT := cardinality(p_event_ids);
    v_stored      INT;
    v_new_version BIGINT;
    v_first       BIGINT;
BEGIN
    -- Idempotency: a batch whose ids are all stored is a retry of an append that succeeded.
    SELECT count(e.event_id), array_agg(e.global_position ORDER BY i.ord),
           array_agg(e.aggregate_version ORDER BY i.ord), (array_agg(e.event_id ORDER BY i.ord))[1]
      INTO v_stored, o_positions, o_versions, o_duplicate
      FROM unnest(p_event_ids) WITH ORDINALITY AS i(id, ord)
      JOIN {schema}.{events} e ON e.event_id = i.id;
    IF v_stored > 0 THEN
        o_outcome := CASE WHEN v_stored = v_count THEN 'replayed' ELSE 'partial_duplicate' END;
        o_actual := v_stored;
        RETURN;
    END IF;

    -- The stream head: row lock + expected-version check + bump, in one statement per case.
    IF p_expected IS NULL THEN
        INSERT INTO {schema}.{aggregate_heads} AS h (aggregate_type, aggregate_id, aggregate_version)
        VALUES (p_aggregate_type, p_aggregate_id, v_count)
        ON CONFLICT (aggregate_type, aggregate_id)
        DO UPDATE SET aggregate_version = h.aggregate_version + v_count, updated_at = now()
        RETURNING h.aggregate_version INTO v_new_version;
    ELSIF p_expected = 0 THEN
        INSERT INTO {schema}.{aggregate_heads} (aggregate_type, aggregate_id, aggregate_version)
        VALUES (p_aggregate_type, p_aggregate_id, v_count)
        ON CONFLICT (aggregate_type, aggregate_id) DO NOTHING
        RETURNING aggregate_version INTO v_new_version;
    ELSE
        UPDATE {schema}.{aggregate_heads} h
           SET aggregate_version = h.aggregate_version + v_count, updated_at = now()
         WHERE h.aggregate_type = p_aggregate_type AND h.aggregate_id = p_aggregate_id
           AND h.aggregate_version = p_expected
        RETURNING h.aggregate_version INTO v_new_version;
    END IF;

    IF v_new_version IS NULL THEN
        -- We may have waited on a writer that stored these very events (a concurrent retry).
        SELECT count(e.event_id), array_agg(e.global_position ORDER BY i.ord),
               array_agg(e.aggregate_version ORDER BY i.ord)
          INTO v_stored, o_positions, o_versions
          FROM unnest(p_event_ids) WITH ORDINALITY AS i(id, ord)
          JOIN {schema}.{events} e ON e.event_id = i.id;
        IF v_stored = v_count THEN
            o_outcome := 'replayed';
            RETURN;
        END IF;
        o_outcome := 'conflict';
        o_positions := NULL;
        o_versions := NULL;
        SELECT h.aggregate_version INTO o_actual FROM {schema}.{aggregate_heads} h
         WHERE h.aggregate_type = p_aggregate_type AND h.aggregate_id = p_aggregate_id;
        o_actual := coalesce(o_actual, 0);
        RETURN;
    END IF;

    v_first := {schema}.{events}_allocate(v_count);

    INSERT INTO {schema}.{events} (global_position, event_id, event_type, event_version,
        bounded_context, aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata,
        trace_id, correlation_id, causation_id, created_at)
    SELECT v_first + i.ord - 1, i.id, i.event_type, i.event_version, i.context,
           p_aggregate_type, p_aggregate_id, v_new_version - v_count + i.ord,
           coalesce(p_tags[i.tag_end - i.tag_count + 1 : i.tag_end], '{}'), i.payload,
           i.metadata::jsonb, i.trace_id, i.correlation_id, i.causation_id, i.created_at
      FROM (SELECT u.*, sum(u.tag_count) OVER (ORDER BY u.ord) AS tag_end
              FROM unnest(p_event_ids, p_event_types, p_event_versions, p_contexts, p_tag_counts,
                          p_payloads, p_metadata, p_trace_ids, p_correlation_ids, p_causation_ids,
                          p_created_at)
                   WITH ORDINALITY AS u(id, event_type, event_version, context, tag_count, payload,
                                        metadata, trace_id, correlation_id, causation_id,
                                        created_at, ord)) i;

    o_outcome := 'appended';
    o_positions := ARRAY(SELECT generate_series(v_first, v_first + v_count - 1));
    o_versions := ARRAY(SELECT generate_series(v_new_version - v_count + 1, v_new_version));
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
BEGIN
    PERFORM pg_advisory_xact_lock_shared(({marker_tag}::bigint << 47)
            | CASE WHEN s.is_called THEN s.last_value ELSE 0 END)
       FROM {schema}.{events}_position_seq s;
    BEGIN
        IF p_count = 1 THEN
            PERFORM pg_advisory_lock_shared({marker_tag}, 0);
            v_first := nextval('{schema}.{events}_position_seq');
            PERFORM pg_advisory_unlock_shared({marker_tag}, 0);
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
-- The sequence value is read first (in the outer query), the markers second (the correlated
-- subquery runs per outer row): a writer that registers in between allocates above the
-- sequence value already read, so it cannot be missed.
CREATE OR REPLACE FUNCTION {schema}.{events}_safe_head() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $fn$
    SELECT least(s.v, coalesce((
        SELECT min(((l.classid::bigint << 32) | l.objid::bigint) & 140737488355327)
          FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND (l.classid::bigint >> 15) = {marker_tag}
           AND s.v IS NOT NULL), s.v))
      FROM (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS v
              FROM {schema}.{events}_position_seq) s
$fn$;
