-- Starts generation ?1 + 1, draining, if the generation is still ?1 (compare and set on the
-- singleton row; a missing row is generation 0). Returns the new number, or no row when
-- another worker moved the generation first. ?1 the current generation.
INSERT INTO {recreate_lock} AS l (id, generation, phase, updated_at)
SELECT 1, ?1 + 1, 'draining', {now}
WHERE ?1 = 0 OR EXISTS (SELECT 1 FROM {recreate_lock} WHERE id = 1)
ON CONFLICT (id) DO UPDATE
SET generation = excluded.generation, phase = excluded.phase, updated_at = excluded.updated_at
WHERE l.generation = ?1
RETURNING generation
