-- Deletes every shard row of a projection, in a reshard's transaction once the locked rows were
-- checked (create_shards.sql then creates the new ones). ? projection name.
DELETE FROM {shards} WHERE projection_name = ?
