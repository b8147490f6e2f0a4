-- The locked head row's version (a locking read: the latest committed version, whatever the
-- transaction's isolation level). Under READ COMMITTED a missing row locks nothing.
-- {type}, {id}: the stream's literals.
SELECT aggregate_version FROM {aggregate_heads}
WHERE aggregate_type = {type} AND aggregate_id = {id}
FOR UPDATE
