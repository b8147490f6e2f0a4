global_position, event_id, event_type, event_version, bounded_context, aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata, trace_id, correlation_id, causation_id, created_at
