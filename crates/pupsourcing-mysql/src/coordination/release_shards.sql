-- Releases every shard of a removed worker: no owner, epoch bumped, so that a batch the old
-- owner still commits is fenced out. ? worker id.
UPDATE {shards} SET owner = NULL, epoch = epoch + 1, updated_at = {now} WHERE owner = ?
