-- Takes the next {count} positions: moves the counter row, whose lock the transaction then holds
-- until it ends (so commits happen in position order, see append/mod.rs), and sets the
-- session's LAST_INSERT_ID() to the last position taken. The statements after it place their
-- rows at LAST_INSERT_ID() - d (rows.rs); the client reads the value from this statement's OK
-- packet. Passing the largest BIGINT fails with ER_DATA_OUT_OF_RANGE.
UPDATE {events_counter} SET last_position = LAST_INSERT_ID(last_position + {count}) WHERE id = 1
