SELECT e.global_position, e.event_id, e.event_type, e.event_version, e.bounded_context,
       e.aggregate_type, e.aggregate_id, e.aggregate_version, e.tags, e.payload, e.metadata,
       e.trace_id, e.correlation_id, e.causation_id, e.created_at
  FROM {schema}.{events} e
