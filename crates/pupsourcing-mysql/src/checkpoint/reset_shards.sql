-- Rewinds a projection's orchestrator shard rows (their checkpoints) to position 0, unowned,
-- epoch bumped: a processor still running a shard is fenced out (this waits for its batch in
-- flight, and its later batches find the new epoch), and the shards are assigned again from 0.
-- ? projection name.
UPDATE {shards}
SET position = 0, owner = NULL, epoch = epoch + 1, updated_at = {now}
WHERE projection_name = ?
