SELECT {schema}.{events}_query_head($1, $2, $3), current_setting('transaction_isolation') = 'read committed'
