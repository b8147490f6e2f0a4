-- Removes every checkpoint of a projection. ?1 projection name.
DELETE FROM {checkpoints} WHERE projection_name = ?1
