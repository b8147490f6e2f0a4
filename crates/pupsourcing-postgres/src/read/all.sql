-- $2 is a gap-free head computed by an earlier statement (never in this one: this statement's
-- snapshot must be newer than the head it is capped at).
SELECT global_position, event_id, event_type, event_version, bounded_context, aggregate_type,
       aggregate_id, aggregate_version, tags, payload, metadata, trace_id, correlation_id,
       causation_id, created_at
  FROM {schema}.{events}
 WHERE global_position >= $1 AND global_position <= $2
 ORDER BY global_position
 LIMIT $3
