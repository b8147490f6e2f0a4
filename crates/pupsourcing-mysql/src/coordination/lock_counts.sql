-- The first statement of every change of a projection's shard count or of its shard rows'
-- creation (ensure_shards, reshard): the recreate lock's row, locked exclusively until the
-- transaction ends, so that such changes run one after the other. A lock on the shard rows
-- would not do: a projection without rows has none to lock (READ COMMITTED takes no gap
-- locks), and rows of different counts have different keys. The statement after it has a
-- snapshot taken after the wait, with the rows of the change before. The row is created as
-- migrate creates it (generation 0, running: what a missing row reads as) if a schema made by
-- hand lacks it; an existing row is left unchanged (but locked).
INSERT INTO {recreate_lock} (id, generation, phase, updated_at) VALUES (1, 0, 'running', {now})
ON DUPLICATE KEY UPDATE id = id
