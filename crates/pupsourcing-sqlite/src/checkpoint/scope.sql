-- The filter of a projection read (a batch or the pending count) on the events row e: the
-- partition's in-scope events after its checkpoint, up to the head. Appended to a statement's
-- head (its FROM {events} AS e); a DCB query's condition may follow it.
-- ?1 after (exclusive), ?2 head (inclusive), ?3 aggregate types, ?4 bounded contexts,
-- ?5 event types (JSON arrays, NULL when the scope sets no such filter), ?6 partition count,
-- ?7 partition key.
WHERE e.global_position > ?1 AND e.global_position <= ?2
  AND (?3 IS NULL OR e.aggregate_type IN (SELECT value FROM json_each(?3)))
  AND (?4 IS NULL OR e.bounded_context IN (SELECT value FROM json_each(?4)))
  AND (?5 IS NULL OR e.event_type IN (SELECT value FROM json_each(?5)))
  AND (?6 = 1 OR e.partition_hash % ?6 = ?7)
