-- Moves a locked stream head to its new version.
-- ? new version, ? now in microseconds, ? aggregate_type, ? aggregate_id (16 bytes).
UPDATE {aggregate_heads} SET aggregate_version = ?, updated_at = ?
WHERE aggregate_type = ? AND aggregate_id = ?
