-- Sets the phase if the generation is still the current one. ? phase, ? generation.
UPDATE {recreate_lock} SET phase = ?, updated_at = {now} WHERE id = 1 AND generation = ?
