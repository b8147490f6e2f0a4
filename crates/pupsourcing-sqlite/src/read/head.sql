-- The highest stored position, 0 for an empty log (the rowid b-tree's last entry: O(log n)).
SELECT COALESCE(MAX(global_position), 0) FROM {events}
