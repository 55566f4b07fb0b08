//! Checks that every [`Store`] implementation must pass (feature `conformance`).
//!
//! Each check is a plain `async fn` that takes an empty or shared store as
//! `Arc<dyn Store>`, exercises one behaviour of the contract on [`Store`] and panics with a
//! message naming the broken rule. Checks use fresh random e-mails and instance ids and look only
//! at their own rows, so several checks may share one database, also concurrently. Two checks
//! need more than a store:
//!
//! - [`data_survives_reopen`] takes a function that opens the same database again.
//! - [`purge_deletes_only_older_rows`] counts every row older than 2001-01-01T12:00:00Z, so no
//!   other writer may store samples or decisions that old while it runs. The other checks use
//!   times in 2026.
//!
//! Checks that race many tasks against each other spawn them with [`tokio::spawn`], so they
//! need a tokio runtime and exercise real parallelism only on a multi-threaded one.
//!
//! # Running the suite
//!
//! [`store_conformance_tests!`](crate::store_conformance_tests) generates one `#[tokio::test]`
//! per check. A backend supplies two functions: one that creates an empty database and returns
//! a value that keeps it alive, and one that opens a store on that database (the reopen check
//! calls it twice):
//!
//! ```ignore
//! async fn fresh_database() -> tempfile::TempDir {
//!     tempfile::tempdir().expect("temporary directory")
//! }
//!
//! async fn open_store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
//!     Arc::new(RedbStore::open(dir.path().join("store.redb")).expect("open"))
//! }
//!
//! autoscaler_core::store_conformance_tests!(fresh_database, open_store);
//! ```
//!
//! The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.

mod decisions;
mod instances;
mod samples;
mod support;
mod users;

pub use decisions::{
    data_survives_reopen, decisions_newest_first, evaluation_applies_atomically,
    evaluation_blocked_keeps_level, evaluation_no_action_flags_nothing,
    evaluation_race_applies_once, evaluation_stale_state_conflicts,
    evaluation_unknown_instance_not_found, purge_deletes_only_older_rows,
};
pub use instances::{
    claim_returns_monitored, collection_error_set_and_clear, instance_concurrent_create_one_wins,
    instance_create_and_find, instance_duplicate_id_conflicts, instance_unknown_is_absent,
    instance_unknown_owner_not_found, instances_by_owner_oldest_first,
    monitoring_concurrent_start_one_wins, monitoring_on_and_off,
    monitoring_unknown_instance_not_found,
};
pub use samples::{
    append_batch_spans_instances, append_dedupes_by_timestamp,
    append_unknown_instance_stores_nothing, recent_samples_newest_first, sample_values_round_trip,
    window_bounds_exclude_since, windows_read_many_instances,
};
pub use users::{
    user_concurrent_create_one_wins, user_create_and_find, user_duplicate_email_conflicts,
    user_email_compared_exactly, user_unknown_is_none,
};

#[cfg(doc)]
use crate::store::Store;

/// Generates one `#[tokio::test]` per conformance check, in a module named `store_conformance`.
///
/// `$database` names an `async fn() -> D` that creates an empty database and returns a value
/// that keeps it alive for the test (a temporary directory, a throwaway schema). `$open` names an
/// `async fn(&D) -> Arc<dyn Store>` that opens a store on it; [`data_survives_reopen`] calls it a
/// second time after dropping the first store. Both are looked up in the module that invokes the
/// macro. Tests run on tokio's multi-threaded runtime so that racing checks run in parallel.
#[macro_export]
macro_rules! store_conformance_tests {
    ($database:ident, $open:ident $(,)?) => {
        $crate::store_conformance_tests!(@tests $database, $open;
            user_create_and_find,
            user_unknown_is_none,
            user_duplicate_email_conflicts,
            user_email_compared_exactly,
            user_concurrent_create_one_wins,
            instance_create_and_find,
            instance_unknown_is_absent,
            instance_unknown_owner_not_found,
            instance_duplicate_id_conflicts,
            instance_concurrent_create_one_wins,
            instances_by_owner_oldest_first,
            monitoring_on_and_off,
            monitoring_concurrent_start_one_wins,
            monitoring_unknown_instance_not_found,
            collection_error_set_and_clear,
            claim_returns_monitored,
            append_dedupes_by_timestamp,
            append_unknown_instance_stores_nothing,
            append_batch_spans_instances,
            window_bounds_exclude_since,
            windows_read_many_instances,
            recent_samples_newest_first,
            sample_values_round_trip,
            evaluation_applies_atomically,
            evaluation_blocked_keeps_level,
            evaluation_no_action_flags_nothing,
            evaluation_stale_state_conflicts,
            evaluation_race_applies_once,
            evaluation_unknown_instance_not_found,
            decisions_newest_first,
            purge_deletes_only_older_rows,
        );
    };
    (@tests $database:ident, $open:ident; $($check:ident),* $(,)?) => {
        mod store_conformance {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let database = super::$database().await;
                    let store = super::$open(&database).await;
                    $crate::conformance::$check(store).await;
                }
            )*

            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn data_survives_reopen() {
                let database = super::$database().await;
                let store = super::$open(&database).await;
                $crate::conformance::data_survives_reopen(store, || super::$open(&database)).await;
            }
        }
    };
}
