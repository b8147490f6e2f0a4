-- What holds the gap-free head back (see {events}_query_head in migrate/schema.sql): the lowest
-- live in-flight marker below the sequence's last value (the head stops at it), with its holder's
-- session (pid; prepared transactions have none), the age of its transaction in microseconds,
-- and its application_name. No row when no live marker is below the sequence's last value:
-- then the head is that value, and nothing in flight holds it back.
WITH sequence AS MATERIALIZED (
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS last_value
      FROM {schema}.{events}_position_seq
), markers AS MATERIALIZED (
    SELECT l.pid, l.virtualtransaction AS holder,
           ((l.classid::bigint << 32) | l.objid::bigint) & 140737488355327 AS marker
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 1
       AND (l.classid::bigint >> 15) = {marker_tag}
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT m.marker, m.pid::bigint,
       (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000000)::bigint,
       a.application_name::text
  FROM sequence s
  JOIN markers m ON m.marker < s.last_value
  LEFT JOIN pg_stat_activity a ON a.pid = m.pid
 WHERE m.holder LIKE '-1/%'
    OR m.holder IN (SELECT x.virtualxid FROM pg_locks x WHERE x.locktype = 'virtualxid')
 ORDER BY m.marker, m.pid
 LIMIT 1
