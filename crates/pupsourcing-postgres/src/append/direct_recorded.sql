-- The step that direct_dcb.sql gains to become the direct DCB append with the record of
-- the command that decided it (sql.rs splices it in as the statement's last CTE): the
-- insert of the command's row, with the event's position, reading the inserted event's row, so
-- the record is written exactly when the event is, in the same transaction. $1-$25 as in
-- direct_dcb.sql; $26-$28 the command's type, data and metadata (JSON text). No row
-- means nothing was written, event or record: the caller then runs recorded.sql, which
-- tells why (and records the command if the function appends after all).
recorded AS (
    INSERT INTO {schema}.{commands} (command_type, data, metadata, positions)
    SELECT $26::text, $27::text::jsonb, $28::text::jsonb, ARRAY[i.global_position]
      FROM inserted i
)
