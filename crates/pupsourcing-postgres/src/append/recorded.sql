-- A DCB append and the record of the command that decided it, as ONE statement: in autocommit
-- mode, one transaction and one round trip for the command executor. $1-$26 are the append
-- function's parameters (see append.sql); $27-$29 the command's type, data and metadata. The
-- command is recorded, with the positions of its events, only when they were appended; the
-- answer is the function's.
WITH appended AS MATERIALIZED (
    SELECT o_outcome, o_actual, o_positions, o_versions, o_duplicate, o_first, o_first_version
      FROM {schema}.{events}_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                                      $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25,
                                      $26)
), recorded AS (
    INSERT INTO {schema}.{commands} (command_type, data, metadata, positions)
    SELECT $27, $28, $29,
           ARRAY(SELECT generate_series(a.o_first, a.o_first + cardinality($4::uuid[]) - 1))
      FROM appended a
     WHERE a.o_outcome = 'appended'
)
SELECT * FROM appended
