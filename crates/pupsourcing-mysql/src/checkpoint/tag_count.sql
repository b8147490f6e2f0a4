-- Narrows a projection read to events carrying all of a query item's tags: how many of them
-- the event has, by point lookups on the tag index (the IN list follows, then ") = n"). One
-- correlated subquery per item, not one join per tag: MySQL refuses more than 61 tables in a join.
(SELECT COUNT(*) FROM {events_tags} AS t WHERE t.global_position = e.global_position AND t.tag IN 
