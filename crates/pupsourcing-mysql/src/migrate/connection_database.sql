-- The connection's database (migrate status of a store whose schema is the default, `public`);
-- NULL when the URL names none.
SELECT CAST(DATABASE() AS BINARY)
