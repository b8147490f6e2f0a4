-- Takes the next ? positions: the counter row's exclusive lock is held until the transaction
-- ends (that is what keeps commits in position order, see read/mod.rs), and LAST_INSERT_ID(x)
-- returns the new last position in the statement's OK packet: no second round trip.
UPDATE {events_counter} SET last_position = LAST_INSERT_ID(last_position + ?) WHERE id = 1
