-- The recreate lock's row, or generation 0, running, when it is missing (a schema created by
-- hand without it).
SELECT generation, phase, updated_at FROM {recreate_lock} WHERE id = 1
UNION ALL
SELECT 0, 'running', {now} FROM DUAL
WHERE NOT EXISTS (SELECT 1 FROM {recreate_lock} WHERE id = 1)
