-- Writes one chunk of the batch: positions, events and tag index rows in one round trip (see
-- the procedure in migrate/schema.sql). Returns the chunk's first position.
-- ? the chunk as JSON, ? its number of events, ? the version of its first event (NULL outside
-- a stream), ? aggregate_type, ? aggregate_id (16 bytes).
CALL {events_write}(?, ?, ?, ?, ?)
