-- Releases every shard owned by one of the workers (a JSON array of ids): no owner, epoch
-- bumped, so that a batch the old owner still commits is fenced out. ?1 worker ids.
UPDATE {shards}
SET owner = NULL, epoch = epoch + 1, updated_at = {now}
WHERE owner IN (SELECT value FROM json_each(?1))
