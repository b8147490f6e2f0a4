-- Whether a stream's head row exists (a plain read: no lock, and under REPEATABLE READ no gap
-- lock that the row's creation would then wait for). ? aggregate_type, ? aggregate_id.
SELECT 1 FROM {aggregate_heads} WHERE aggregate_type = ? AND aggregate_id = ?
