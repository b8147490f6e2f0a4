-- The gap-free head: the counter's last position as this statement sees it (committed, or
-- bumped by the reading transaction itself). See read/mod.rs for why it is gap-free.
SELECT last_position FROM {events_counter} WHERE id = 1
