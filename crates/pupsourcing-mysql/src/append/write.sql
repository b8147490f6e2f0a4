-- Writes events: positions, events and tag index rows in one round trip (see the procedure in
-- migrate/schema.sql). Returns the first position.
-- ? the events as a JSON array (append/rows.rs), ? their number.
CALL {events_write_rows}(?, ?)
