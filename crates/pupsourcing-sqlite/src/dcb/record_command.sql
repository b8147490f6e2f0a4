-- Records a command of the DCB command executor.
-- ?1 command_type, ?2 data (JSON text), ?3 metadata (JSON text or NULL),
-- ?4 positions (JSON array), ?5 now in microseconds.
INSERT INTO {commands} (command_type, data, metadata, positions, created_at)
VALUES (?1, ?2, ?3, ?4, ?5)
