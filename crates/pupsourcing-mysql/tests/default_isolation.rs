//! Both conformance suites on a pool whose sessions default to REPEATABLE READ (InnoDB's
//! default; the store's own `connect` sets READ COMMITTED, an application's pool may not):
//! the store's transactions set READ COMMITTED themselves.

mod common;

mod event_store {
    use super::common;
    pupsourcing_testkit::event_store_conformance!(common::plain_pool_store);
}

mod dcb {
    use super::common;
    pupsourcing_testkit::dcb_conformance!(common::plain_pool_store);
}
