-- Locks every orchestrator shard row of a projection, in key order, until the transaction ends
-- (a reset's first statement: a reshard in flight commits first, so that the rewind after it
-- sees the reshard's new rows). ? projection name.
SELECT shard FROM {shards} WHERE projection_name = ?
ORDER BY shard_count, shard
FOR UPDATE
