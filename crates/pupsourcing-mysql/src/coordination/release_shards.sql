-- Releases every shard of the removed workers: no owner, epoch bumped, so that a batch an old
-- owner still commits is fenced out. One statement for all of them, after their deletes: one
-- scan of the table in key order, as reshards and ensures lock shard rows, and no shard row
-- held while a delete waits for a worker's batch (see mod.rs). Followed by the worker ids:
-- (?, ?, ...).
UPDATE {shards} SET owner = NULL, epoch = epoch + 1, updated_at = {now} WHERE owner IN
