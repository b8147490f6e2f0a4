-- The direct DCB append: one event without a stream, in autocommit mode, as ONE statement (no
-- function call, no subtransaction). See direct_stream.sql for the aggregate twin.
--
-- It takes the parameters of {events}_append, but the event's columns as scalars (cheaper to
-- receive than one-element arrays): $1-$3 unused (NULL), $4-$14 the event's columns, $15 its
-- partition hash, $16-$18 the sorted boundary locks, $19 whether a condition applies, $20-$25
-- the condition (its query matches all events, its `after`, its items as flattened types and
-- tags with per-item counts). It answers with the columns of {events}_append, but only ever 'appended' or no row
-- at all: a failed condition (or an isolation level above READ COMMITTED, under which a
-- condition cannot be checked soundly) writes nothing, and a stored event id fails the statement on the unique index. The
-- caller then runs {events}_append, which tells those cases apart; all of them stay failed on a
-- second look, since matching events and stored ids only ever grow.
--
-- Each step reads the row of the step before it, so the steps run in this order:
--   1. the boundary locks, in the caller's sorted order;
--   2. the condition check: a VOLATILE function, so it takes a fresh snapshot that sees every
--      append that committed while we waited for the locks;
--   3. the in-flight marker, keyed by the sequence value read before allocating, and the
--      allocation lock shared with other single-event appends (a batch takes it exclusively to
--      allocate a contiguous block); both are transaction locks, released at commit;
--   4. the position, the event row and its tag-index rows.
WITH inserted AS (
    INSERT INTO {schema}.{events} (global_position, event_id, event_type, event_version,
        bounded_context, tags, payload, metadata, trace_id, correlation_id, causation_id,
        created_at, partition_hash)
    SELECT nextval('{schema}.{events}_position_seq'), $4::uuid, $5::text, $6::int, $7::text,
           $8::text[], $9::bytea, $10::text::json, $11::uuid, $12::uuid, $13::uuid,
           $14::timestamptz, $15::bigint
      FROM (SELECT CASE WHEN NOT $19::bool THEN FALSE
                        WHEN current_setting('transaction_isolation') <> 'read committed' THEN NULL
                        ELSE {schema}.{events}_condition_matches($20::bool,
                                 coalesce($21::bigint, 0), $22::text[], $23::int[], $24::text[],
                                 $25::int[])
                   END AS failed
              FROM (SELECT count(CASE WHEN l.exclusive THEN pg_advisory_xact_lock(l.hi, l.lo)
                                      ELSE pg_advisory_xact_lock_shared(l.hi, l.lo) END) AS taken
                      FROM unnest($16::int[], $17::int[], $18::bool[]) AS l(hi, lo, exclusive)
                   ) AS locks
             WHERE locks.taken >= 0 -- (the reference keeps the lock step in the plan)
           ) AS checked,
           LATERAL (SELECT pg_advisory_xact_lock_shared(({marker_tag}::bigint << 47)
                       | coalesce(pg_sequence_last_value('{schema}.{events}_position_seq'), 0)),
                           pg_advisory_xact_lock_shared({marker_tag}, 0)
                     WHERE checked.failed IS FALSE) AS registered
    RETURNING global_position
), indexed AS (
    INSERT INTO {schema}.{events}_tags (tag, global_position, event_type)
    SELECT t.tag, i.global_position, $5::text
      FROM inserted i, unnest($8::text[]) AS t(tag)
)
SELECT 'appended' AS o_outcome, NULL::bigint AS o_actual, NULL::bigint[] AS o_positions,
       NULL::bigint[] AS o_versions, NULL::uuid AS o_duplicate, i.global_position AS o_first,
       NULL::bigint AS o_first_version
  FROM inserted i
