//! The orchestrator suite on PostgreSQL: workers as tasks, each with its own store clone, on
//! one schema with a read-model table.

mod common;

use common::read_model::fresh;

pupsourcing_testkit::orchestrator_conformance!(fresh);
