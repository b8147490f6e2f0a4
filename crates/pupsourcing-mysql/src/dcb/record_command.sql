-- Records a command of the DCB command executor.
-- ? command_type, ? data (JSON text), ? metadata (JSON text or NULL),
-- ? positions (JSON array), ? now in microseconds.
INSERT INTO {commands} (command_type, data, metadata, positions, created_at)
VALUES (?, ?, ?, ?, ?)
