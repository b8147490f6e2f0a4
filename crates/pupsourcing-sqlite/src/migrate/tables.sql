-- The tables of the database (migrate status).
SELECT name FROM sqlite_master WHERE type = 'table'
