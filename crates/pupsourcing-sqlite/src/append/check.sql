-- Idempotency and the expected version, in one statement, before an append writes anything:
-- one row with a NULL event_id holding the stream's current version (0 when it does not exist),
-- then one row for each of the batch's event ids that is already stored.
-- ?1 aggregate_type, ?2 aggregate_id (16-byte blob), ?3 JSON array of the batch's event ids in hex.
-- A DCB append binds NULL to ?1 and ?2 (its first row is then version 0, and unused).
SELECT NULL AS event_id,
       NULL AS global_position,
       COALESCE((SELECT aggregate_version FROM {aggregate_heads}
                 WHERE aggregate_type = ?1 AND aggregate_id = ?2), 0) AS aggregate_version
UNION ALL
SELECT event_id, global_position, aggregate_version
FROM {events}
WHERE event_id IN (SELECT unhex(value) FROM json_each(?3))
