-- The tables of one database (migrate status): the database the store's schema names, or the
-- connection's. Names as bytes: information_schema's columns are utf8mb3 on MariaDB.
SELECT CAST(table_name AS BINARY) AS name
FROM information_schema.tables
WHERE table_schema = ? AND table_type = 'BASE TABLE'
