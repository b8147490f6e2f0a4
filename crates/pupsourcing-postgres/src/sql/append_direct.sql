-- The direct append: one event, in autocommit mode, as ONE statement (no function call, no
-- subtransaction). It takes the parameters of {events}_append, but the event's columns as
-- scalars ($4-$14; cheaper to receive than one-element arrays), and answers with the
-- function's columns, but only ever 'appended' or no outcome at all: any other case (a failed expected version or
-- condition, REPEATABLE READ) writes nothing and leaves o_outcome NULL, and a stored event id
-- fails the statement on the unique index. The caller then runs {events}_append, which tells
-- those cases apart. All of them stay failed on a second look: versions and matching events
-- only ever grow.
--
-- Each step reads the row of the step before it, so the steps run in this order:
--   1. the boundary locks, in the caller's sorted order;
--   2. the condition check: a VOLATILE function, so it takes a fresh snapshot that sees every
--      append that committed while we waited for the locks;
--   3. the stream head: bumped, with the expected version checked, under its row lock;
--   4. the in-flight marker, keyed by the sequence value read before allocating, and the
--      allocation lock shared with other single-event appends (a batch takes it exclusively to
--      allocate a contiguous block); both are transaction locks, released at commit;
--   5. the position, the event row and its tag-index rows.
WITH locks AS MATERIALIZED (
    SELECT count(CASE WHEN l.exclusive THEN pg_advisory_xact_lock(l.hi, l.lo)
                      ELSE pg_advisory_xact_lock_shared(l.hi, l.lo) END) AS taken
      FROM unnest($15::int[], $16::int[], $17::bool[]) AS l(hi, lo, exclusive)
), checked AS MATERIALIZED (
    SELECT CASE WHEN NOT $18::bool THEN FALSE
                WHEN current_setting('transaction_isolation') = 'repeatable read' THEN NULL
                ELSE {schema}.{events}_condition_matches($19::bool, coalesce($20::bigint, 0),
                         $21::text[], $22::int[], $23::text[], $24::int[])
           END AS failed
      FROM locks
), upserted AS (
    INSERT INTO {schema}.{aggregate_heads} AS h (aggregate_type, aggregate_id, aggregate_version)
    SELECT $1::text, $2::uuid, 1 FROM checked
     WHERE checked.failed IS FALSE AND $1::text IS NOT NULL AND coalesce($3::bigint, 0) = 0
    ON CONFLICT (aggregate_type, aggregate_id)
    DO UPDATE SET aggregate_version = h.aggregate_version + 1, updated_at = now()
       WHERE $3::bigint IS NULL
    RETURNING h.aggregate_version
), updated AS (
    UPDATE {schema}.{aggregate_heads} h
       SET aggregate_version = h.aggregate_version + 1, updated_at = now()
      FROM checked
     WHERE checked.failed IS FALSE AND $3::bigint > 0
       AND h.aggregate_type = $1::text AND h.aggregate_id = $2::uuid
       AND h.aggregate_version = $3::bigint
    RETURNING h.aggregate_version
), stream AS MATERIALIZED (
    SELECT aggregate_version AS version FROM upserted
    UNION ALL
    SELECT aggregate_version FROM updated
    UNION ALL
    SELECT NULL FROM checked WHERE checked.failed IS FALSE AND $1::text IS NULL
), allocated AS MATERIALIZED (
    SELECT s.version, nextval('{schema}.{events}_position_seq') AS position
      FROM stream s,
           LATERAL (SELECT pg_advisory_xact_lock_shared(({marker_tag}::bigint << 47)
                       | coalesce(pg_sequence_last_value('{schema}.{events}_position_seq'), 0)),
                           pg_advisory_xact_lock_shared({marker_tag}, 0)) AS registered
), inserted AS (
    INSERT INTO {schema}.{events} (global_position, event_id, event_type, event_version,
        bounded_context, aggregate_type, aggregate_id, aggregate_version, tags, payload,
        metadata, trace_id, correlation_id, causation_id, created_at)
    SELECT a.position, $4::uuid, $5::text, $6::int, $7::text, $1::text, $2::uuid, a.version,
           $8::text[], $9::bytea, $10::text::jsonb, $11::uuid, $12::uuid, $13::uuid,
           $14::timestamptz
      FROM allocated a
    RETURNING global_position, aggregate_version
), indexed AS (
    INSERT INTO {schema}.{events}_tags (tag, global_position, event_type)
    SELECT t.tag, i.global_position, $5::text
      FROM inserted i, unnest($8::text[]) AS t(tag)
)
SELECT CASE WHEN i.global_position IS NOT NULL THEN 'appended' END AS o_outcome,
       NULL::bigint AS o_actual, NULL::bigint[] AS o_positions, NULL::bigint[] AS o_versions,
       NULL::uuid AS o_duplicate, i.global_position AS o_first,
       i.aggregate_version AS o_first_version
  FROM (SELECT) AS one LEFT JOIN inserted i ON TRUE
