-- The first generation of a schema without the recreate lock's row (migrate creates it):
-- generation 1, draining. The primary key lets one of several such calls create it.
INSERT IGNORE INTO {recreate_lock} (id, generation, phase, updated_at)
VALUES (1, 1, 'draining', {now})
