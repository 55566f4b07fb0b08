//! Fixtures shared by the checks.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::engine::{self, WindowSample};
use crate::model::Sample;
use crate::policy::Policy;
use crate::store::{Error, Instance, NewDecisionRecord, NewInstance, NewUser, Store, User};

/// A password hash in PHC format; stores keep it as an opaque string.
pub(super) const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

/// Tasks that race for one key in the concurrency checks.
pub(super) const RACERS: usize = 16;

/// 2026-01-01T00:00:00Z, the base of the sample times of most checks.
pub(super) fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01 is a valid time")
}

/// Returns `base_time() + seconds`.
pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    base_time() + TimeDelta::seconds(seconds)
}

/// Returns a name that no other check or run uses.
pub(super) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// Returns an e-mail address that no other check or run uses.
pub(super) fn unique_email() -> String {
    format!("{}@example.com", unique("user"))
}

/// A sample with the given CPU, 50 % memory and some network traffic.
pub(super) fn sample(at: DateTime<Utc>, cpu: f64) -> Sample {
    Sample::new(at, cpu, Some(50.0), 1_000_000.0, 500_000.0).expect("fixture sample is valid")
}

/// Creates a user with a fresh e-mail.
pub(super) async fn create_user(store: &dyn Store) -> User {
    store
        .create_user(NewUser {
            email: unique_email(),
            password_hash: PASSWORD_HASH.into(),
        })
        .await
        .expect("create_user with a fresh e-mail")
}

/// Returns the input of [`Store::create_instance`] for a mock instance with a fresh id.
pub(super) fn new_instance(owner: Uuid) -> NewInstance {
    NewInstance {
        owner_id: owner,
        instance_id: unique("mock"),
        instance_type: "t2.micro".into(),
        region: "mock".into(),
        is_mock: true,
    }
}

/// Creates a user and a mock instance owned by them.
pub(super) async fn create_instance(store: &dyn Store) -> Instance {
    let owner = create_user(store).await;
    store
        .create_instance(new_instance(owner.id))
        .await
        .expect("create_instance with a fresh id")
}

/// Reads an instance that must exist.
pub(super) async fn reload(store: &dyn Store, instance: &Instance) -> Instance {
    store
        .instance(&instance.instance_id)
        .await
        .expect("instance")
        .unwrap_or_else(|| panic!("instance {} vanished", instance.instance_id))
}

/// Stores `samples` for `instance` and checks that all of them were new.
pub(super) async fn append(store: &dyn Store, instance: &Instance, samples: &[Sample]) {
    let batch: Vec<(Uuid, Sample)> = samples.iter().map(|s| (instance.id, *s)).collect();
    let added = store.append_samples(&batch).await.expect("append_samples");
    assert_eq!(
        added,
        samples.len(),
        "append_samples must count every new sample"
    );
}

/// Stores `count` samples at `cpu` percent, 30 s apart, the last one at `end`.
pub(super) async fn append_series(
    store: &dyn Store,
    instance: &Instance,
    end: DateTime<Utc>,
    count: i64,
    cpu: f64,
) {
    let samples: Vec<Sample> = (0..count)
        .map(|i| sample(end - TimeDelta::seconds(30 * (count - 1 - i)), cpu))
        .collect();
    append(store, instance, &samples).await;
}

/// Evaluates `instance` at `now` with the default policy over its stored window, against the
/// scale state stored now, and returns the record ready for [`Store::record_evaluation`].
pub(super) async fn evaluation(
    store: &dyn Store,
    instance: &Instance,
    now: DateTime<Utc>,
) -> NewDecisionRecord {
    let policy = Policy::default();
    let current = reload(store, instance).await;
    let since = engine::window_start(now, policy.window);
    let windows = store
        .windows(&[instance.id], since, now)
        .await
        .expect("windows");
    let window: Vec<WindowSample> = windows
        .get(&instance.id)
        .map(|samples| samples.iter().map(|s| s.to_window_sample()).collect())
        .unwrap_or_default();
    NewDecisionRecord {
        instance: instance.id,
        evaluated_at: now,
        expected: current.scale,
        evaluation: engine::evaluate(&policy, &window, now, &current.scale),
    }
}

/// Panics unless `result` failed with [`Error::Conflict`].
pub(super) fn assert_conflict<T: Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::Conflict { .. }) => {}
        other => panic!("{what}: expected a Conflict error, got {other:?}"),
    }
}

/// Panics unless `result` failed with [`Error::NotFound`].
pub(super) fn assert_not_found<T: Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected a NotFound error, got {other:?}"),
    }
}

/// Checks that a time a store set itself lies between `before` and now, allowing for the
/// store's precision and a store server's clock being slightly off.
pub(super) fn assert_recent(stored: DateTime<Utc>, before: DateTime<Utc>, what: &str) {
    let slack = TimeDelta::seconds(5);
    let after = Utc::now();
    assert!(
        stored >= before - slack && stored <= after + slack,
        "{what} {stored} is not between {before} and {after}"
    );
}

/// Runs `RACERS` copies of `task` at once and returns their results.
pub(super) async fn race<T, F, Fut>(store: &Arc<dyn Store>, task: F) -> Vec<Result<T, Error>>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let attempt = task(Arc::clone(store));
            tokio::spawn(async move {
                barrier.wait().await;
                attempt.await
            })
        })
        .collect();
    futures::future::join_all(handles)
        .await
        .into_iter()
        .map(|joined| joined.expect("racing task panicked"))
        .collect()
}

/// Checks that exactly one of `results` succeeded and every other one is a conflict, and
/// returns the winner.
pub(super) fn single_winner<T: Debug>(results: Vec<Result<T, Error>>, what: &str) -> T {
    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(value) => winners.push(value),
            Err(Error::Conflict { .. }) => {}
            Err(other) => panic!("{what}: a losing racer must get Conflict, got {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{what}: exactly one racer must win, got {winners:?}"
    );
    winners.remove(0)
}
