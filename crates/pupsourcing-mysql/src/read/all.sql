-- A page of the global log between two inclusive positions, in position order.
-- ? first position, ? last position (the head read before), ? page size.
SELECT {columns}
FROM {events}
WHERE global_position BETWEEN ? AND ?
ORDER BY global_position
LIMIT ?
