-- Compare-and-set of the generation from $1 to $1 + 1, phase draining. One row (the new
-- number) or none when the generation is no longer $1. Concurrent callers queue on the row
-- lock and re-check the committed generation (READ COMMITTED), so exactly one wins. A missing
-- row counts as generation 0: only a call with $1 = 0 creates it, and the primary key lets one
-- of several such calls do so.
WITH moved AS (
    UPDATE {schema}.{recreate_lock}
       SET generation = generation + 1, phase = 'draining', updated_at = now()
     WHERE id = 1 AND generation = $1
    RETURNING generation
), created AS (
    INSERT INTO {schema}.{recreate_lock} (id, generation, phase, updated_at)
    SELECT 1, 1, 'draining', now()
     WHERE $1 = 0 AND NOT EXISTS (SELECT 1 FROM moved)
    ON CONFLICT (id) DO NOTHING
    RETURNING generation
)
SELECT generation FROM moved
UNION ALL
SELECT generation FROM created
