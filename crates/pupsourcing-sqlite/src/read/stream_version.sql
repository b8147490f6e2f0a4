-- A stream's current version; no row when the stream does not exist.
-- ?1 aggregate_type, ?2 aggregate_id (16-byte blob).
SELECT aggregate_version FROM {aggregate_heads} WHERE aggregate_type = ?1 AND aggregate_id = ?2
