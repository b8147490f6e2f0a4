-- Inserts or replaces a worker's row, registered and heard from now (database clock).
-- ? worker id, ? generation, ? state.
INSERT INTO {workers} (worker_id, generation, state, started_at, last_heartbeat)
VALUES (?, ?, ?, {now}, {now})
ON DUPLICATE KEY UPDATE generation = VALUES(generation), state = VALUES(state),
    started_at = VALUES(started_at), last_heartbeat = VALUES(last_heartbeat)
