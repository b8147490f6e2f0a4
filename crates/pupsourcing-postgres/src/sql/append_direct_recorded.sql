-- The direct DCB append with the record of the command that decided it: append_direct_dcb.sql
-- (read it for the steps and why they run in that order) plus one more step, the insert of the
-- command's row, with the event's position, reading the inserted event's row: so the record is
-- written exactly when the event is, in the same transaction. $1-$25 as in
-- append_direct_dcb.sql; $26-$28 the command's type, data and metadata (JSON text). No row
-- means nothing was written, event or record: the caller then runs append_recorded.sql, which
-- tells why (and records the command if the function appends after all).
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
), recorded AS (
    INSERT INTO {schema}.{commands} (command_type, data, metadata, positions)
    SELECT $26::text, $27::text::jsonb, $28::text::jsonb, ARRAY[i.global_position]
      FROM inserted i
)
SELECT 'appended' AS o_outcome, NULL::bigint AS o_actual, NULL::bigint[] AS o_positions,
       NULL::bigint[] AS o_versions, NULL::uuid AS o_duplicate, i.global_position AS o_first,
       NULL::bigint AS o_first_version
  FROM inserted i
