-- Locks the existing head rows of a group's streams and returns their versions (a locking read:
-- the latest committed versions, kept current by the locks). InnoDB locks them in primary key
-- order as it scans, so groups lock heads in one global order. Under READ COMMITTED a missing
-- row locks nothing (no gap lock): group_heads_create.sql inserts it with the write.
-- {rows} is (aggregate_type = X'..' AND aggregate_id = X'..') per stream, joined by OR.
SELECT aggregate_type, aggregate_id, aggregate_version FROM {aggregate_heads}
WHERE {rows}
FOR UPDATE
