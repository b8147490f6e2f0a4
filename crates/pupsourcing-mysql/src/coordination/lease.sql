-- The lease of a batch transaction: MariaDB ends a session whose transaction sits idle
-- longer than idle_transaction_timeout seconds (rolling the batch back, releasing its
-- locks). Set for the session; the store's next transaction on it sets it back (store::BEGIN).
-- MySQL has no such variable and skips the comment. {seconds} is a number.
/*M!100300 SET SESSION idle_transaction_timeout = {seconds} */
