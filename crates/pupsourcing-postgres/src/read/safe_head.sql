SELECT {schema}.{events}_safe_head(), current_setting('transaction_isolation') = 'read committed'
