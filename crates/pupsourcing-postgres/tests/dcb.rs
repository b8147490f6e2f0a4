//! The DCB conformance suite on a real PostgreSQL server, each test in a schema of its own.

mod common;

pupsourcing_testkit::dcb_conformance!(common::fresh_store);
