-- A registering worker's lock row (see lock_worker.sql), after register_worker.sql in the same
-- transaction: the workers row's lock first, the order a removal takes them in. The row of a
-- worker registering again is kept: IGNORE takes a shared lock on it, as the worker's batches
-- in flight do, where an update would wait for them. ? worker id.
INSERT IGNORE INTO {worker_locks} (worker_id) VALUES (?)
