-- Removes one dead letter. ? projection name, ? position.
DELETE FROM {dead_letters} WHERE projection_name = ? AND position = ?
