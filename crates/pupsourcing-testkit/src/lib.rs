//! The conformance suite every pupsourcing backend runs.
//!
//! Each test is an async function taking a fresh, empty store. A backend's integration test
//! file instantiates all of them with [`event_store_conformance!`], passing a function that
//! builds a store in its own schema (or file) and returns `None` when the server is unreachable
//! outside CI (see [`unreachable()`]).

pub mod coordination;
pub mod dcb;
pub mod decisions;
mod fixtures;
pub mod global_log;
pub mod group_races;
pub mod identifiers;
pub mod lifecycle;
pub mod limits;
pub mod orchestrator;
pub mod orchestrator_moves;
pub mod orchestrator_processes;
pub mod projection_store;
pub mod projections;
pub mod round_trip;
pub mod scaling;
pub mod streams;

pub use fixtures::{
    CHILD_DATABASE, env_or, event, new_stream, spawn_tail, spawner, stress_duration, unreachable,
};

/// Expands to one `#[tokio::test]` per conformance test, each calling `$make().await` for a
/// fresh store (`Option<S>`; `None` skips the test).
#[macro_export]
macro_rules! event_store_conformance {
    ($make:path) => {
        $crate::__conformance_tests!($make;
            streams::round_trip_of_every_field,
            streams::versions_are_assigned_in_order,
            streams::expected_version_cases,
            streams::version_range_reads,
            streams::idempotent_reappend,
            streams::rejected_batches_write_nothing,
            streams::validation_errors_write_nothing,
            streams::caller_transaction_spans_streams,
            streams::concurrent_exact_appends_have_one_winner,
            streams::concurrent_any_appends_never_skip_a_version,
            global_log::empty_store,
            global_log::read_all_pages_and_streams,
            global_log::batch_positions_are_contiguous,
            global_log::out_of_order_commits_are_never_skipped,
            lifecycle::rollback_discards_the_transaction,
            lifecycle::read_all_in_reads_the_transactions_own_appends,
            group_races::mixed_expected_versions_race,
        );
    };
}

/// Expands to one `#[tokio::test]` per DCB conformance test (see [`event_store_conformance!`]).
#[macro_export]
macro_rules! dcb_conformance {
    ($make:path) => {
        $crate::__conformance_tests!($make;
            dcb::empty_store_reads,
            dcb::reads_with_options,
            dcb::query_matching,
            dcb::failing_conditions_write_nothing,
            dcb::passing_conditions,
            dcb::idempotent_dcb_appends,
            dcb::dcb_validation,
            dcb::aggregate_events_are_in_the_boundary,
            dcb::streaming_read,
            dcb::one_boundary_one_winner,
            dcb::disjoint_boundaries_all_win,
            dcb::overlapping_boundaries_never_both_win,
            dcb::racing_creates_one_winner,
            dcb::unconditional_appends_all_succeed,
            dcb::oracle_conditions_held,
            dcb::executor_retries_on_fresh_state,
            dcb::transaction_sees_its_own_appends,
            dcb::own_reads_never_open_gaps,
            dcb::query_tails_never_skip_out_of_order_commits,
            group_races::grouped_boundaries_race,
            group_races::concurrent_replays_are_recognised,
            dcb::query_tails_below_a_fresh_log_head_never_skip,
            decisions::cached_decisions_number_without_repeats,
            decisions::cached_refusals_are_made_again_on_fresh_state,
            decisions::cached_events_are_what_a_read_returns,
            decisions::cached_decisions_see_every_path_of_writing,
            decisions::cached_multi_item_decisions_see_every_path_of_writing,
            decisions::cached_decisions_on_all_events_see_every_path_of_writing,
            decisions::cached_replays_are_not_counted_twice,
            decisions::cached_decisions_survive_eviction_races,
            decisions::decisions_on_new_boundaries_need_no_read,
            decisions::racing_claims_on_new_boundaries_claim_once,
            decisions::assumed_refusals_are_made_again_on_a_read,
        );
    };
}

/// Expands to one `#[tokio::test]` per coordination test (the orchestrator's store; see
/// [`coordination`]). `$make` is an async function returning a fresh store (`Option<S>`, `S:
/// CoordinationStore`; `None` skips the test). With `server` (PostgreSQL, MySQL), also the
/// tests that write on another connection while a batch's transaction is open
/// (`a_fenced_out_owner_cannot_commit`, `a_heartbeat_does_not_wait_for_the_batch_in_flight`),
/// which a backend with one writer at a time (SQLite) cannot interleave.
#[macro_export]
macro_rules! coordination_conformance {
    ($make:path, server) => {
        $crate::coordination_conformance!($make);
        $crate::__conformance_tests!($make;
            coordination::a_fenced_out_owner_cannot_commit,
            coordination::a_heartbeat_does_not_wait_for_the_batch_in_flight,
        );
    };
    ($make:path) => {
        $crate::__conformance_tests!($make;
            coordination::workers_round_trip,
            coordination::stale_workers_are_removed_by_the_database_clock,
            coordination::generation_compare_and_set_has_one_winner,
            coordination::ensure_shards_is_idempotent,
            coordination::concurrent_ensures_of_two_counts_create_one_count,
            coordination::assignment_compare_and_set_has_one_winner,
            coordination::a_reassignment_waits_for_the_batch_in_flight,
            coordination::a_removed_worker_cannot_commit,
            coordination::reshard_replaces_only_the_expected_shards,
            coordination::shard_errors_follow_the_fence,
            coordination::a_reset_racing_a_reshard_rewinds_the_new_shards,
        );
    };
}

/// Expands to one `#[tokio::test]` per projection test. `$make` is an async function
/// returning `Option<(S, M)>`: a fresh store and a read model table beside it
/// ([`projections::ReadModel`]); `None` skips the test.
#[macro_export]
macro_rules! projection_conformance {
    ($make:path) => {
        $crate::__projection_tests!($make;
            every_event_once,
            scoped_partitions_split_the_log,
            stop_policy_stops_before_the_poison,
            panics_roll_back_like_errors,
            retry_policy_retries_then_stops,
            shutdown_cuts_a_retry_wait_short,
            dead_letters_set_poison_aside,
            two_processors_never_apply_a_batch_twice,
            reset_replays_from_the_start,
            reset_while_running_applies_nothing_twice,
            graceful_shutdown_resumes_exactly_once,
            out_of_order_writers_are_projected_exactly_once,
            out_of_order_writers_are_projected_exactly_once_in_scope,
            bad_settings_are_refused,
            status_reports_lag,
            aborted_task_leaves_no_partial_batch,
        );
    };
}

/// Expands to one `#[tokio::test]` per test of the backend half of projections
/// ([`projection_store`]). `$make` is an async function returning a fresh store (`Option<S>`;
/// `None` skips the test), `$make_ceiling` the same with `pupsourcing_core::Limits::CEILING`,
/// `$hashes` an async function from a store to its stored partition hashes by position
/// ([`projection_store::StoredHashes`]) and `$connection` an async function from a store to a
/// pooled connection outside any transaction ([`projection_store::PlainConnection`]).
/// `racers = $racers` names an async function returning the two stores of the checkpoint race
/// (`Option<(S, S)>`); without it they are two handles on one `$make` store.
#[macro_export]
macro_rules! projection_store_conformance {
    ($make:path, $make_ceiling:path, $hashes:path, $connection:path) => {
        $crate::__projection_store_tests!($make, $make_ceiling, $hashes, $connection;
            $crate::projection_store::two_handles($make().await));
    };
    ($make:path, $make_ceiling:path, $hashes:path, $connection:path, racers = $racers:path) => {
        $crate::__projection_store_tests!($make, $make_ceiling, $hashes, $connection;
            $racers().await);
    };
}

/// Expands to a `#[tokio::test]` of a suite function that kills a child process of the test
/// binary: `$module::$test(store, model, spawn_child)`, with `$module::$child(store, model)` the
/// child's work ([`projections::killed_processor_resumes_exactly_once`] with
/// [`projections::run_until_killed`], [`orchestrator::a_killed_worker_process_is_replaced`]
/// with [`orchestrator::run_worker_until_killed`]). `$new_database` names a new database
/// (schema, file URL); `$open` opens it (`async fn(&str) -> Option<(S, M)>`; `None` skips), in
/// the parent and, with [`CHILD_DATABASE`] set, in the child.
#[macro_export]
macro_rules! killed_child_process_test {
    ($module:ident :: $test:ident, $child:ident; $new_database:expr, $open:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $test() {
            if let Ok(database) = std::env::var($crate::CHILD_DATABASE) {
                let (store, model) = $open(&database).await.expect("the parent reached it");
                return $crate::$module::$child(store, model).await;
            }
            let database = $new_database;
            let Some((store, model)) = $open(&database).await else { return };
            let spawn = $crate::spawner(stringify!($test), &database);
            $crate::$module::$test(store, model, move || spawn(&[])).await;
        }
    };
}

/// Expands to one `#[tokio::test]` per named test of [`orchestrator_processes`] (by default
/// the three that need only a spawner). In a worker process (`CHILD_DATABASE` set) the test
/// runs the worker on `$child(&database).await` (`(S, L)`); else `$parent().await` gives the
/// database, the store and the ledger (`Option<(String, S, L)>`; `None` skips).
#[macro_export]
macro_rules! orchestrator_process_tests {
    ($parent:path, $child:path) => {
        $crate::orchestrator_process_tests!($parent, $child;
            three_worker_processes_share_several_projections,
            a_paused_worker_cannot_commit,
            chaos_kills_and_restarts_workers,
        );
    };
    ($parent:path, $child:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                use $crate::orchestrator_processes as processes;
                if let Ok(database) = std::env::var(processes::CHILD_DATABASE) {
                    let (store, ledger) = $child(&database).await;
                    return processes::run_worker_process(store, ledger).await;
                }
                let Some((database, store, ledger)) = $parent().await else { return };
                let spawn = processes::spawner(stringify!($name), &database);
                processes::$name(store, ledger, spawn).await;
            }
        )*
    };
}

/// The tests of [`projection_store_conformance!`], `$racers` an expression for the race's
/// stores.
#[doc(hidden)]
#[macro_export]
macro_rules! __projection_store_tests {
    ($make:path, $make_ceiling:path, $hashes:path, $connection:path; $racers:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn every_append_path_stores_the_partition_hash() {
            if let Some(store) = $make().await {
                $crate::projection_store::every_append_path_stores_the_partition_hash(
                    store, $hashes,
                )
                .await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn batches_of_a_query_of_many_items() {
            if let Some(store) = $make_ceiling().await {
                $crate::projection_store::batches_of_a_query_of_many_items(store).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_advances_from_one_position_have_one_winner() {
            $crate::projection_store::concurrent_advances_from_one_position_have_one_winner(
                $racers,
            )
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_reset_outside_a_transaction_commits() {
            if let Some(store) = $make().await {
                $crate::projection_store::a_reset_outside_a_transaction_commits(
                    store,
                    $connection,
                )
                .await;
            }
        }

        $crate::__conformance_tests!($make;
            projection_store::batches_hold_exactly_the_scoped_events_of_their_partition,
            projection_store::checkpoints_advance_by_compare_and_set,
            projection_store::dead_letters_round_trip,
            projection_store::reset_removes_one_projections_checkpoints_and_dead_letters,
            projection_store::pending_counts_in_scope_partition_events,
        );
    };
}

/// Expands to one `#[tokio::test]` per orchestrator test ([`orchestrator`]). `$make` is an
/// async function returning `Option<(S, M)>` like [`projection_conformance!`]'s, with `S:
/// CoordinationStore`.
#[macro_export]
macro_rules! orchestrator_conformance {
    ($make:path) => {
        $crate::__orchestrator_tests!($make;
            two_workers_split_the_shards,
            a_vanished_worker_is_replaced,
            recreate_drains_the_old_generation_first,
            graceful_shutdown_releases_the_shards,
            bad_settings_are_refused,
            reset_replays_an_orchestrated_projection,
            a_new_generation_changes_the_shard_count,
            status_reports_workers_and_shards,
            a_worker_with_another_shard_count_changes_nothing,
        );
    };
}

/// Expands to one `#[tokio::test]` per test of shard moves and Recreate downtime
/// ([`orchestrator_moves`]), with the same `$make` as [`orchestrator_conformance!`].
#[macro_export]
macro_rules! orchestrator_moves_conformance {
    ($make:path) => {
        $crate::__orchestrator_moves_tests!($make;
            joining_and_leaving_move_only_what_must,
            flapping_worker_causes_no_waves,
            recreate_downtime_is_bounded,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __orchestrator_moves_tests {
    ($make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some((store, model)) = $make().await {
                    $crate::orchestrator_moves::$name(store, model).await;
                }
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __orchestrator_tests {
    ($make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some((store, model)) = $make().await {
                    $crate::orchestrator::$name(store, model).await;
                }
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __projection_tests {
    ($make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some((store, model)) = $make().await {
                    $crate::projections::$name(store, model).await;
                }
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per test of the log's limits. `$make_with` is an async
/// function from a [`pupsourcing_core::StoreConfig`] to a fresh store (`Option<S>`; `None`
/// skips the test), since these tests use more than one configuration.
#[macro_export]
macro_rules! limits_conformance {
    ($make_with:path) => {
        $crate::__limits_tests!($make_with;
            events_at_every_limit_read_back,
            unstorable_input_is_refused,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __limits_tests {
    ($make_with:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::limits::$name($make_with).await;
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($make:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some(store) = $make().await {
                    $crate::$module::$name(store).await;
                }
            }
        )*
    };
}
