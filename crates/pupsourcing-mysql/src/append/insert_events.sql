-- Inserts events with the positions and versions the store assigned. Followed by one
-- 16-value row per event; a batch too big for one packet is split into several statements.
INSERT INTO {events} (
    global_position, event_id, event_type, event_version, bounded_context,
    aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata,
    trace_id, correlation_id, causation_id, created_at, partition_hash
) VALUES
