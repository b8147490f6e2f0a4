-- The current generation: the singleton row, or generation 0 running when it is missing.
SELECT generation, phase, updated_at FROM {schema}.{recreate_lock} WHERE id = 1
UNION ALL
SELECT 0, 'running', now()
 WHERE NOT EXISTS (SELECT 1 FROM {schema}.{recreate_lock} WHERE id = 1)
