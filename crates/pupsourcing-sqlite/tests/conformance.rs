//! The conformance suite, each test on a new database file so that pooled connections really
//! race on one file.

mod common;

pupsourcing_testkit::event_store_conformance!(common::fresh_store);
