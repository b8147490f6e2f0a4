SELECT {schema}.{events}_safe_head()
