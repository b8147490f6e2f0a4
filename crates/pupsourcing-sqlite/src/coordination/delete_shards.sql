-- Deletes every shard row of a projection, in a reshard's write transaction once the rows were
-- checked (create_shards.sql then creates the new ones). ?1 projection name.
DELETE FROM {shards} WHERE projection_name = ?1
