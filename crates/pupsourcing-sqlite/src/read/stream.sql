-- The events of one stream within an inclusive version range, in version order.
-- ?1 aggregate_type, ?2 aggregate_id (16-byte blob), ?3 first version, ?4 last version.
SELECT global_position, event_id, event_type, event_version, bounded_context,
       aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata,
       trace_id, correlation_id, causation_id, created_at
FROM {events}
WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND aggregate_version BETWEEN ?3 AND ?4
ORDER BY aggregate_version
