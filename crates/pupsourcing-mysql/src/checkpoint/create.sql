-- Creates a checkpoint at position 0 unless it exists (autocommit: no lock outlives it).
-- ? projection name, ? partition key, ? partition count.
INSERT IGNORE INTO {checkpoints} (projection_name, partition_key, partition_count, position,
                                  updated_at)
VALUES (?, ?, ?, 0, {now})
