-- Group commit: several single-event appends of the store's own, each atomic and checked on its
-- own, written by ONE statement in one transaction (see group.rs). The writer only groups
-- requests that cannot see each other: different streams, and boundary locks where no key is
-- wanted exclusively by one request and at all by another. So
-- each request's checks only need what committed before, exactly as in direct_dcb.sql.
--
-- Per request ($1-$3, $4-$7 and $9-$16 for its event, $20-$22, $27-$32): stream type and id
-- (NULL for a DCB event), expected version, the event's columns and partition hash, whether a
-- condition applies, whether it matches all events, its `after`, and 1-based slices of the
-- flattened condition arrays $23-$26 (items, types, tags). $8: all events' tags, flattened.
-- $17-$19: the union of the requests' boundary locks, sorted. Expected versions ($3) are per
-- request and of any kind: NULL = any, 0 = no stream (also `Exact(0)`), n = exactly n.
-- $33-$35: per request, the record of the command that decided it (type, data and metadata as
-- JSON text), or NULL types for requests without one: a request's command row is inserted
-- exactly when its event is, with its position, in this statement's transaction.
--
-- Answers one row per request, in request order: its position and version, or NULLs when it
-- was not appended (its expected version or condition failed): the caller retries that request
-- alone, and the function tells why. A stored event id fails the whole statement.
WITH locks AS MATERIALIZED (
    SELECT count(CASE WHEN l.exclusive THEN pg_advisory_xact_lock(l.hi, l.lo)
                      ELSE pg_advisory_xact_lock_shared(l.hi, l.lo) END) AS taken
      FROM unnest($17::int[], $18::int[], $19::bool[]) AS l(hi, lo, exclusive)
), requests AS MATERIALIZED (
    SELECT r.*, (sum(r.tag_count) OVER (ORDER BY r.ord))::int AS tag_end
      FROM unnest($1::text[], $2::uuid[], $3::bigint[], $9::int[], $20::bool[], $21::bool[],
                  $22::bigint[], $27::int[], $28::int[], $29::int[], $30::int[], $31::int[],
                  $32::int[])
           WITH ORDINALITY AS r(stream_type, stream_id, expected, tag_count, checks, check_all,
                                after, item_lo, item_hi, type_lo, type_hi, tag_lo, tag_hi, ord)
), checked AS MATERIALIZED (
    -- After every lock (each row joins the lock step's row): a fresh snapshot per check.
    SELECT r.*,
           CASE WHEN NOT r.checks THEN FALSE
                WHEN current_setting('transaction_isolation') <> 'read committed' THEN NULL
                ELSE {schema}.{events}_condition_matches(r.check_all, coalesce(r.after, 0),
                         ($23::text[])[r.type_lo : r.type_hi], ($24::int[])[r.item_lo : r.item_hi],
                         ($25::text[])[r.tag_lo : r.tag_hi], ($26::int[])[r.item_lo : r.item_hi])
           END AS failed
      FROM locks, requests r
), heads AS (
    -- One pass over the streams in sorted order, so two groups never deadlock on head rows.
    -- Each request's own expected version decides: a new head row is proposed for `any` and
    -- `no stream` (expected + 1 = 1), and for an exact version only when our snapshot saw the
    -- stream (heads are never deleted once committed), so that an exact version never creates
    -- a head. On an existing head row (locked, and re-read at its latest committed version),
    -- `any` bumps it, an exact version bumps it only when it is still the expected one, and
    -- `no stream` never does.
    INSERT INTO {schema}.{aggregate_heads} AS h (aggregate_type, aggregate_id, aggregate_version)
    SELECT c.stream_type, c.stream_id, coalesce(c.expected, 0) + 1
      FROM checked c
     WHERE c.failed IS FALSE AND c.stream_type IS NOT NULL
       AND (coalesce(c.expected, 0) = 0 OR EXISTS (
               SELECT 1 FROM {schema}.{aggregate_heads} x
                WHERE x.aggregate_type = c.stream_type AND x.aggregate_id = c.stream_id))
     ORDER BY c.stream_type, c.stream_id
    ON CONFLICT (aggregate_type, aggregate_id)
    DO UPDATE SET aggregate_version = h.aggregate_version + 1, updated_at = now()
       WHERE EXISTS (
               SELECT 1 FROM requests r
                WHERE r.stream_type = h.aggregate_type AND r.stream_id = h.aggregate_id
                  AND (r.expected IS NULL OR r.expected = h.aggregate_version))
    RETURNING h.aggregate_type, h.aggregate_id, h.aggregate_version
), go AS MATERIALIZED (
    SELECT c.ord, c.stream_type, c.stream_id, h.aggregate_version AS version, c.tag_count,
           c.tag_end
      FROM checked c
      LEFT JOIN heads h ON h.aggregate_type = c.stream_type AND h.aggregate_id = c.stream_id
     WHERE c.failed IS FALSE AND (c.stream_type IS NULL OR h.aggregate_version IS NOT NULL)
), registered AS MATERIALIZED (
    -- The in-flight marker and the shared allocation lock, as in direct_dcb.sql, taken once
    -- the head rows are locked.
    SELECT pg_advisory_xact_lock_shared(({marker_tag}::bigint << 47)
               | coalesce(pg_sequence_last_value('{schema}.{events}_position_seq'), 0)),
           pg_advisory_xact_lock_shared({marker_tag}, 0)
      FROM (SELECT count(*) AS n FROM go) g
     WHERE g.n > 0
), allocated AS MATERIALIZED (
    SELECT g.*, nextval('{schema}.{events}_position_seq') AS position
      FROM registered, go g
     ORDER BY g.ord
), inserted AS (
    INSERT INTO {schema}.{events} (global_position, event_id, event_type, event_version,
        bounded_context, aggregate_type, aggregate_id, aggregate_version, tags, payload,
        metadata, trace_id, correlation_id, causation_id, created_at, partition_hash)
    SELECT a.position, ($4::uuid[])[a.ord], ($5::text[])[a.ord], ($6::int[])[a.ord],
           ($7::text[])[a.ord], a.stream_type, a.stream_id, a.version,
           coalesce(($8::text[])[a.tag_end - a.tag_count + 1 : a.tag_end], '{}'),
           ($10::bytea[])[a.ord], ($11::text[])[a.ord]::json, ($12::uuid[])[a.ord],
           ($13::uuid[])[a.ord], ($14::uuid[])[a.ord], ($15::timestamptz[])[a.ord],
           ($16::bigint[])[a.ord]
      FROM allocated a
    RETURNING global_position, event_id, event_type, tags, aggregate_version
), indexed AS (
    INSERT INTO {schema}.{events}_tags (tag, global_position, event_type)
    SELECT unnest(i.tags), i.global_position, i.event_type FROM inserted i
), recorded AS (
    -- Only requests that were appended (every allocated row is inserted, or the statement
    -- fails and nothing is written), so a request whose check failed records nothing.
    INSERT INTO {schema}.{commands} (command_type, data, metadata, positions)
    SELECT ($33::text[])[a.ord], ($34::text[])[a.ord]::jsonb, ($35::text[])[a.ord]::jsonb,
           ARRAY[a.position]
      FROM allocated a
     WHERE ($33::text[])[a.ord] IS NOT NULL
     ORDER BY a.ord
)
SELECT i.global_position, i.aggregate_version
  FROM unnest($4::uuid[]) WITH ORDINALITY AS r(event_id, ord)
  LEFT JOIN inserted i ON i.event_id = r.event_id
 ORDER BY r.ord
