-- The versions of the head rows the group locked (group_heads_lock.sql). A plain read: under READ
-- COMMITTED it sees the latest committed version, which the held locks keep current.
-- {rows} is (aggregate_type = ? AND aggregate_id = ?) per stream, joined by OR.
SELECT aggregate_type, aggregate_id, aggregate_version FROM {aggregate_heads}
WHERE {rows}
