-- The transaction that the lock request of connection ? waits for (stall_wait.sql): its
-- connection id, the age of its transaction in microseconds, and its user@host. MariaDB (and
-- MySQL 5.7) information_schema views; reading other sessions needs the PROCESS privilege.
-- Appends queued for the counter before the request block it too (InnoDB grants in order):
-- the holder is the one not waiting itself (trx_started has whole seconds only).
SELECT CAST(b.trx_mysql_thread_id AS SIGNED),
       TIMESTAMPDIFF(MICROSECOND, b.trx_started, NOW(6)),
       CONCAT(p.USER, '@', p.HOST)
FROM information_schema.INNODB_LOCK_WAITS AS w
JOIN information_schema.INNODB_TRX AS r ON r.trx_id = w.requesting_trx_id
JOIN information_schema.INNODB_TRX AS b ON b.trx_id = w.blocking_trx_id
LEFT JOIN information_schema.PROCESSLIST AS p ON p.ID = b.trx_mysql_thread_id
WHERE r.trx_mysql_thread_id = ?
ORDER BY b.trx_state = 'LOCK WAIT', b.trx_started
LIMIT 1
