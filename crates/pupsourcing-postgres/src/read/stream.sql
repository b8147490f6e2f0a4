SELECT global_position, event_id, event_type, event_version, bounded_context, aggregate_type,
       aggregate_id, aggregate_version, tags, payload, metadata, trace_id, correlation_id,
       causation_id, created_at
  FROM {schema}.{events}
 WHERE aggregate_type = $1 AND aggregate_id = $2
   AND aggregate_version >= $3 AND aggregate_version <= $4
 ORDER BY aggregate_version
