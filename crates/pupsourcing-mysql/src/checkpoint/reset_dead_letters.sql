-- Removes every dead letter of a projection. ? projection name.
DELETE FROM {dead_letters} WHERE projection_name = ?
