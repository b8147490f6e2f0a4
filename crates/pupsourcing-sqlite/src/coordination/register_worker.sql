-- Inserts or replaces a worker's row, registered and heartbeating now (database clock).
-- ?1 worker id, ?2 generation, ?3 state.
INSERT INTO {workers} (worker_id, generation, state, started_at, last_heartbeat)
VALUES (?1, ?2, ?3, {now}, {now})
ON CONFLICT (worker_id) DO UPDATE
SET generation = excluded.generation,
    state = excluded.state,
    started_at = excluded.started_at,
    last_heartbeat = excluded.last_heartbeat
