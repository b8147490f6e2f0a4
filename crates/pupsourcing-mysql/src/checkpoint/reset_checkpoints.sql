-- Removes every checkpoint of a projection. ? projection name.
DELETE FROM {checkpoints} WHERE projection_name = ?
