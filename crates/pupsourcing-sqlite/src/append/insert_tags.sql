-- Fills the DCB tag index for a batch just inserted: one row per (tag, event).
-- The batch's positions are one contiguous block, and the connection holds the write lock, so
-- the range holds exactly the batch's events.
-- ?1 first position of the batch, ?2 last position.
INSERT INTO {events_tags} (tag, global_position, event_type)
SELECT t.value, e.global_position, e.event_type
FROM {events} AS e, json_each(e.tags) AS t
WHERE e.global_position BETWEEN ?1 AND ?2
