-- A projection batch: $1 the checkpoint (exclusive), $2 a gap-free head computed by an earlier
-- statement (never in this one: this statement's snapshot must be newer than the head it is
-- capped at), $3 the limit. checkpoint/mod.rs adds the scope's and the partition's filters (binds
-- from $4), then the order and the limit.
SELECT e.global_position, e.event_id, e.event_type, e.event_version, e.bounded_context,
       e.aggregate_type, e.aggregate_id, e.aggregate_version, e.tags, e.payload, e.metadata,
       e.trace_id, e.correlation_id, e.causation_id, e.created_at
  FROM {schema}.{events} e
 WHERE e.global_position > $1 AND e.global_position <= $2
