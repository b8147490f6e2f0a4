-- Sets the phase to $2 if generation $1 is still the current one.
UPDATE {schema}.{recreate_lock}
   SET phase = $2, updated_at = now()
 WHERE id = 1 AND generation = $1
