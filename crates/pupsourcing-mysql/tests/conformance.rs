//! The conformance suite on a real MySQL / MariaDB server, each test in a database of its own.
//!
//! Server: `PUP_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`). When it is
//! unreachable the tests are skipped, except under `CI=true`, where they fail.

mod common;

pupsourcing_testkit::event_store_conformance!(common::fresh_store);
