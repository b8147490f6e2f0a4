-- The tables and procedures of one database (migrate status): the database the store's schema
-- names, or the connection's (bound twice). Tables and procedures have separate namespaces,
-- hence the kind. Names as bytes: information_schema's columns are utf8mb3 on MariaDB.
SELECT 'table' AS kind, CAST(table_name AS BINARY) AS name
FROM information_schema.tables
WHERE table_schema = ? AND table_type = 'BASE TABLE'
UNION ALL
SELECT 'procedure', CAST(routine_name AS BINARY)
FROM information_schema.routines
WHERE routine_schema = ? AND routine_type = 'PROCEDURE'
