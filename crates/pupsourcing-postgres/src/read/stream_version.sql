SELECT aggregate_version FROM {schema}.{aggregate_heads} WHERE aggregate_type = $1 AND aggregate_id = $2
