-- Removes one dead letter. ?1 projection name, ?2 position.
DELETE FROM {dead_letters} WHERE projection_name = ?1 AND position = ?2
