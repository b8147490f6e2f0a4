-- The session's isolation level ('READ-COMMITTED', 'REPEATABLE-READ', ...). @@tx_isolation is
-- MariaDB's name (MySQL 8 dropped it); the store falls back to @@transaction_isolation.
SELECT @@tx_isolation
