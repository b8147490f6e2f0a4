-- Removes every checkpoint and dead letter of projection $1, and rewinds its orchestrator shard
-- rows (their checkpoints) to position 0, unowned, epoch bumped: a processor still running a
-- shard is fenced out (the UPDATE waits for its batch in flight, and its later batches find
-- the new epoch), and the shards are assigned again from 0.
WITH checkpoints AS (
    DELETE FROM {schema}.{checkpoints} WHERE projection_name = $1
), shards AS (
    UPDATE {schema}.{shards}
       SET position = 0, owner = NULL, epoch = epoch + 1, updated_at = now()
     WHERE projection_name = $1
)
DELETE FROM {schema}.{dead_letters} WHERE projection_name = $1
