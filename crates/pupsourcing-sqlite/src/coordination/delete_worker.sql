-- Removes one worker's row. ?1 worker id.
DELETE FROM {workers} WHERE worker_id = ?1
