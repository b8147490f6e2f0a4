-- Inserts events at the positions the counter statement before it took.
-- {rows}: one row per event, literals only (rows.rs). A stored event id fails it on the unique
-- index: a replay or a partial duplicate (append/mod.rs).
INSERT INTO {events} (
    global_position, event_id, event_type, event_version, bounded_context,
    aggregate_type, aggregate_id, aggregate_version, tags, payload, metadata,
    trace_id, correlation_id, causation_id, created_at, partition_hash
) VALUES {rows}
