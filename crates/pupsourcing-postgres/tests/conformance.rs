//! The conformance suite on a real PostgreSQL server, each test in a schema of its own.
//!
//! Server: `PUP_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`). When it is
//! unreachable the tests are skipped, except under `CI=true`, where they fail.

mod common;

pupsourcing_testkit::event_store_conformance!(common::fresh_store);
