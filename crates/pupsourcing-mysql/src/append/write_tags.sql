-- Inserts the DCB tag index rows of the events the statement before it inserted.
-- {rows}: (tag, position, event type) per tag, literals only (rows.rs).
INSERT INTO {events_tags} (tag, global_position, event_type) VALUES {rows}
