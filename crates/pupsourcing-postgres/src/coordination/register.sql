-- Inserts or replaces worker $1 with generation $2 and state $3, registered and heard from now
-- (database clock).
INSERT INTO {schema}.{workers} AS w (worker_id, generation, state, started_at, last_heartbeat)
VALUES ($1, $2, $3, now(), now())
ON CONFLICT (worker_id) DO UPDATE
   SET generation = EXCLUDED.generation, state = EXCLUDED.state,
       started_at = EXCLUDED.started_at, last_heartbeat = EXCLUDED.last_heartbeat
