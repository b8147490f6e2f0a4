-- Every worker, by id.
SELECT worker_id, generation, state, started_at, last_heartbeat
  FROM {schema}.{workers}
 ORDER BY worker_id
