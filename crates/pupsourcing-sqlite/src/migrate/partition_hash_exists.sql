-- Whether the events table has its partition_hash column yet (databases created before it
-- existed do not). ?1 the events table's name.
SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'partition_hash')
