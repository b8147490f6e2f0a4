-- Which of a batch's event ids are stored, with their positions and versions (a locking read:
-- every committed row, whatever the transaction's isolation level). The ids follow: (?, ...).
SELECT event_id, global_position, aggregate_version FROM {events} WHERE event_id IN
