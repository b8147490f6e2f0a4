-- Whether the tag index exists yet. ?1 its name.
SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)
