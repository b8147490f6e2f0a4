-- The events of one stream within an inclusive version range, in version order.
-- ? aggregate_type, ? aggregate_id (16 bytes), ? first version, ? last version.
SELECT {columns}
FROM {events}
WHERE aggregate_type = ? AND aggregate_id = ? AND aggregate_version BETWEEN ? AND ?
ORDER BY aggregate_version
