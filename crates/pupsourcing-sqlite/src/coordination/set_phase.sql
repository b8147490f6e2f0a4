-- Sets the phase of generation ?1 if it is still the current one (a missing row is generation
-- 0). Returns the generation, or no row when it is not current. ?1 generation, ?2 phase.
INSERT INTO {recreate_lock} AS l (id, generation, phase, updated_at)
SELECT 1, 0, ?2, {now}
WHERE ?1 = 0 OR EXISTS (SELECT 1 FROM {recreate_lock} WHERE id = 1)
ON CONFLICT (id) DO UPDATE
SET phase = ?2, updated_at = excluded.updated_at
WHERE l.generation = ?1
RETURNING generation
