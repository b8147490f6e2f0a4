SELECT o_outcome, o_actual, o_positions, o_versions, o_duplicate, o_first, o_first_version
  FROM {schema}.{events}_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                                  $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
