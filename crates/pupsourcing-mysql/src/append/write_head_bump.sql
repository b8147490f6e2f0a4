-- Moves a locked stream head to its new version, before the counter is taken (write.rs).
-- {version}: the new version; {type}, {id}: the stream's literals.
UPDATE {aggregate_heads} SET aggregate_version = {version}, updated_at = {now}
WHERE aggregate_type = {type} AND aggregate_id = {id}
