-- Compare-and-set of the generation from ? to ? + 1, phase draining. Matches one row or none:
-- concurrent callers queue on the row lock and the later ones find the generation moved.
-- ? current generation.
UPDATE {recreate_lock}
SET generation = generation + 1, phase = 'draining', updated_at = {now}
WHERE id = 1 AND generation = ?
