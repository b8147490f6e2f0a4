-- The locked head row's version (a locking read: the latest committed version, whatever the
-- transaction's isolation level).
-- ? aggregate_type, ? aggregate_id (16 bytes).
SELECT aggregate_version FROM {aggregate_heads}
WHERE aggregate_type = ? AND aggregate_id = ?
FOR UPDATE
