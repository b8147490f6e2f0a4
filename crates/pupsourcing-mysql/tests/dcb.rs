//! The DCB conformance suite on a real MySQL / MariaDB server, each test in a database of its
//! own.

mod common;

pupsourcing_testkit::dcb_conformance!(common::fresh_store);
