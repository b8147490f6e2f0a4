-- Compare-and-set of shard ($1 projection, $2 count, $3 shard)'s checkpoint from $4 to $5, only
-- while the row still names owner $6 under epoch $7 (the fence) AND owner $6 is still
-- registered. Changes one row or none; the row lock is held until the caller's transaction ends,
-- so a reassignment waits for the batch and a batch after a reassignment sees the new epoch and
-- changes nothing.
--
-- The owner's worker row is locked FOR KEY SHARE first (an uncorrelated subquery: evaluated
-- before any shard row is locked, the order the removals take too): a removal (its DELETE)
-- waits for the batch in flight, and a batch after a removal finds no row. So a worker that is
-- gone never commits, even under a fence a planner that listed it just before its removal gave
-- it afterwards. KEY SHARE does not block heartbeats (they update no key column).
--
-- Those waits must end even if the batch's process pauses (SIGSTOP, a long GC) or its handler
-- hangs outside the database: `lease` sets idle_in_transaction_session_timeout to $8 ms for
-- this transaction only, so the server ends the session once the transaction sits idle that
-- long, rolling the batch back and releasing both locks.
WITH lease AS (
    SELECT set_config('idle_in_transaction_session_timeout', $8, true) AS limit_ms
)
UPDATE {schema}.{shards}
   SET position = $5, updated_at = now()
 WHERE projection_name = $1 AND shard_count = $2 AND shard = $3
   AND position = $4 AND owner = $6 AND epoch = $7
   AND EXISTS (SELECT 1 FROM {schema}.{workers} WHERE worker_id = $6 FOR KEY SHARE)
   AND EXISTS (SELECT 1 FROM lease)
