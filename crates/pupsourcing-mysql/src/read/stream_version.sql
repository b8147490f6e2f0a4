-- A stream's current version; no row when the stream does not exist.
-- ? aggregate_type, ? aggregate_id (16 bytes).
SELECT aggregate_version FROM {aggregate_heads} WHERE aggregate_type = ? AND aggregate_id = ?
