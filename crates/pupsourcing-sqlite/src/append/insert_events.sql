-- Inserts a whole batch in one statement, from one JSON array parameter: one object per event,
-- in batch order, with UUIDs and the payload in hex. Optional fields are left out when absent,
-- so that `->` and `->>` yield SQL NULL for them.
-- Rows are inserted in array order while this transaction holds the write lock, so they get one
-- contiguous, increasing block of positions, and versions ?3 + 1, ?3 + 2, ...
-- Used by both write paths: a stream append binds its stream and the stream's version before
-- the batch; a DCB append binds NULL to ?1, ?2 and ?3, so the events belong to no stream.
-- ?1 aggregate_type, ?2 aggregate_id (16-byte blob), ?3 the stream's version before the batch,
-- ?4 the JSON array.
-- partition_hash is computed in Rust (pupsourcing_core::projection::partition_hash), as an
-- integer from 0 to 2^32 - 1.
INSERT INTO {events} (
    event_id, event_type, event_version, bounded_context,
    aggregate_type, aggregate_id, aggregate_version,
    tags, payload, metadata, trace_id, correlation_id, causation_id, created_at,
    partition_hash
)
SELECT unhex(e.value ->> '$.id'),
       e.value ->> '$.type',
       e.value ->> '$.version',
       e.value ->> '$.context',
       ?1,
       ?2,
       ?3 + e.key + 1,
       e.value -> '$.tags',
       unhex(e.value ->> '$.payload'),
       e.value -> '$.metadata',
       unhex(e.value ->> '$.trace'),
       unhex(e.value ->> '$.correlation'),
       unhex(e.value ->> '$.causation'),
       e.value ->> '$.at',
       e.value ->> '$.hash'
FROM json_each(?4) AS e
ORDER BY e.key
RETURNING global_position, event_id
