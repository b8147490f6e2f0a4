-- Fills the tag index from the events table's tags column: run by migrate once, when it has just
-- created the tag index in a database whose events were written before the index existed.
INSERT OR IGNORE INTO {events_tags} (tag, global_position, event_type)
SELECT t.value, e.global_position, e.event_type
FROM {events} AS e, json_each(e.tags) AS t
