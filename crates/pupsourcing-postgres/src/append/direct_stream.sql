-- The direct append to an aggregate stream: one event, in autocommit mode, as ONE statement (no
-- function call, no subtransaction). See direct_dcb.sql for the DCB twin, which checks a
-- condition instead of a version.
--
-- It takes the parameters of direct_dcb.sql ($1-$3: stream type, id and expected
-- version: NULL any, 0 no stream, n exactly n; $4-$14: the event's columns; $15: its partition
-- hash; $16-$18: the sorted boundary locks; $19-$25: the condition, unused here) and answers
-- with the columns of
-- {events}_append, but only ever 'appended' or no row at all: a failed expected version writes
-- nothing, and a stored event id fails the statement on the unique index. The caller then runs
-- {events}_append, which tells those cases apart; both stay failed on a second look.
--
-- Each step reads the row of the step before it, so the steps run in this order:
--   1. the boundary locks (shared: this event's keys), in the caller's sorted order;
--   2. the stream head, bumped under its row lock with the expected version checked. An exact
--      version never creates a head: only a stream our snapshot saw (heads are never deleted
--      once committed) is tried; a concurrent bump is re-checked by ON CONFLICT's WHERE;
--   3. the in-flight marker, keyed by the sequence value read before allocating, and the
--      allocation lock shared with other single-event appends (a batch takes it exclusively to
--      allocate a contiguous block); both are transaction locks, released at commit;
--   4. the position, the event row and its tag-index rows.
WITH head AS (
    INSERT INTO {schema}.{aggregate_heads} AS h (aggregate_type, aggregate_id, aggregate_version)
    SELECT $1::text, $2::uuid, 1
      FROM (SELECT count(CASE WHEN l.exclusive THEN pg_advisory_xact_lock(l.hi, l.lo)
                              ELSE pg_advisory_xact_lock_shared(l.hi, l.lo) END) AS taken
              FROM unnest($16::int[], $17::int[], $18::bool[]) AS l(hi, lo, exclusive)) AS locks
     WHERE locks.taken >= 0 -- (the reference keeps the lock step in the plan)
       AND (coalesce($3::bigint, 0) = 0 OR EXISTS (
               SELECT 1 FROM {schema}.{aggregate_heads} x
                WHERE x.aggregate_type = $1::text AND x.aggregate_id = $2::uuid))
    ON CONFLICT (aggregate_type, aggregate_id)
    DO UPDATE SET aggregate_version = h.aggregate_version + 1, updated_at = now()
       WHERE $3::bigint IS NULL OR ($3::bigint > 0 AND h.aggregate_version = $3::bigint)
    RETURNING h.aggregate_version
), inserted AS (
    INSERT INTO {schema}.{events} (global_position, event_id, event_type, event_version,
        bounded_context, aggregate_type, aggregate_id, aggregate_version, tags, payload,
        metadata, trace_id, correlation_id, causation_id, created_at, partition_hash)
    SELECT nextval('{schema}.{events}_position_seq'), $4::uuid, $5::text, $6::int, $7::text,
           $1::text, $2::uuid, head.aggregate_version, $8::text[], $9::bytea,
           $10::text::json, $11::uuid, $12::uuid, $13::uuid, $14::timestamptz, $15::bigint
      FROM head,
           LATERAL (SELECT pg_advisory_xact_lock_shared(({marker_tag}::bigint << 47)
                       | coalesce(pg_sequence_last_value('{schema}.{events}_position_seq'), 0)),
                           pg_advisory_xact_lock_shared({marker_tag}, 0)
                     WHERE head.aggregate_version IS NOT NULL) AS registered
    RETURNING global_position, aggregate_version
), indexed AS (
    INSERT INTO {schema}.{events}_tags (tag, global_position, event_type)
    SELECT t.tag, i.global_position, $5::text
      FROM inserted i, unnest($8::text[]) AS t(tag)
)
SELECT 'appended' AS o_outcome, NULL::bigint AS o_actual, NULL::bigint[] AS o_positions,
       NULL::bigint[] AS o_versions, NULL::uuid AS o_duplicate, i.global_position AS o_first,
       i.aggregate_version AS o_first_version
  FROM inserted i
