-- A projection partition's lag: $1 the checkpoint (exclusive), $2 a gap-free head computed by
-- an earlier statement. checkpoint/mod.rs adds the scope's and the partition's filters (binds from
-- $3).
SELECT count(*), min(e.created_at)
  FROM {schema}.{events} e
 WHERE e.global_position > $1 AND e.global_position <= $2
