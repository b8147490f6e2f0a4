-- The head of every DCB read of items: the event columns of the positions in the union `m`
-- compiled from the query (see dcb/mod.rs); the WHERE, ORDER BY and LIMIT follow.
SELECT {columns}
FROM {events} AS e
