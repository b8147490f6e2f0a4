INSERT INTO {schema}.{commands} (command_type, data, metadata, positions) VALUES ($1, $2, $3, $4)
