-- A page of the global log from an inclusive position, in position order.
-- ?1 first position, ?2 page size.
SELECT global_position, event_id, event_type, event_version, bounded_context,
       aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata,
       trace_id, correlation_id, causation_id, created_at
FROM {events}
WHERE global_position >= ?1
ORDER BY global_position
LIMIT ?2
