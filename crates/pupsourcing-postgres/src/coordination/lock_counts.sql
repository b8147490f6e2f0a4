-- The first statement of every creation of a projection's shard rows and of every change of
-- its shard count (ensure_shards, reshard): the recreate lock's row, locked exclusively until
-- the transaction ends, so that such changes run one after the other. A lock on the shard rows
-- would not do: a projection without rows has none to lock, and rows of different counts have
-- different keys. The statement after this one has a snapshot taken after the wait, with the
-- rows of the change before (READ COMMITTED). The row is created as migrate creates it if a
-- schema made by hand lacks it (a missing row reads as generation 0, running); an existing
-- row keeps its values.
INSERT INTO {schema}.{recreate_lock} (id) VALUES (1)
ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
