-- Removes every dead letter of a projection. ?1 projection name.
DELETE FROM {dead_letters} WHERE projection_name = ?1
