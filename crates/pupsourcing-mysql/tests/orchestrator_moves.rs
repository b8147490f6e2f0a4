//! Shard moves as workers join, leave and flap, and Recreate downtime, on MySQL / MariaDB:
//! workers as tasks, each with its own store clone, on one database with a read-model table.

mod common;

use common::read_model::fresh;

pupsourcing_testkit::orchestrator_moves_conformance!(fresh);
