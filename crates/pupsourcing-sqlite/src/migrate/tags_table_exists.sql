-- Whether the tag index exists yet. ?1 its name (SQLite names ignore ASCII case).
SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE)
