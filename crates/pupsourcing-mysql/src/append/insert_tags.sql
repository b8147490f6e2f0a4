-- Fills the DCB tag index for inserted events: one (tag, global_position, event_type) row per
-- tag of each event follows.
INSERT INTO {events_tags} (tag, global_position, event_type) VALUES
