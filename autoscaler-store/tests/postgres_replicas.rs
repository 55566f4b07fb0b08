//! Several replicas on one PostgreSQL database: instance leases of
//! `PgStore::claim_monitored` and evaluations that race between two stores.
//!
//! Each test creates a database of its own on the server at `AUTOSCALER_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and drops it afterwards. Lease
//! expiry is driven by the `now` passed to each claim, so no test waits for a lease to end.

mod postgres_support;

use std::collections::HashSet;
use std::time::Duration;

use autoscaler_core::store::{Error, Instance, NewDecisionRecord, NewInstance, NewUser};
use autoscaler_core::{Policy, Sample, ScaleState, Store};
use autoscaler_store::PgStore;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use postgres_support::TestDatabase;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid start time")
        + TimeDelta::seconds(seconds)
}

/// Registers `count` instances named `{prefix}-{n}` of one new user and monitors all but
/// `unmonitored` of them; returns the ids of the monitored ones.
async fn monitored_instances(
    store: &PgStore,
    prefix: &str,
    count: usize,
    unmonitored: usize,
) -> HashSet<Uuid> {
    let owner = store
        .create_user(NewUser {
            email: format!("{prefix}@example.com"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        })
        .await
        .expect("create user");
    let mut monitored = HashSet::new();
    for n in 0..count {
        let instance_id = format!("{prefix}-{n}");
        let instance = store
            .create_instance(NewInstance {
                owner_id: owner.id,
                instance_id: instance_id.clone(),
                instance_type: "t2.micro".to_owned(),
                region: "mock".to_owned(),
                is_mock: true,
            })
            .await
            .expect("create instance");
        if n >= unmonitored {
            store
                .set_monitoring(&instance_id, true)
                .await
                .expect("start monitoring");
            monitored.insert(instance.id);
        }
    }
    monitored
}

async fn claim(store: &PgStore, holder: Uuid, now: DateTime<Utc>) -> HashSet<Uuid> {
    let claimed = store
        .claim_monitored(holder, LEASE, now)
        .await
        .expect("claim_monitored");
    claimed
        .iter()
        .map(|instance: &Instance| instance.id)
        .collect()
}

/// Lets each holder claim once, in order, and returns their claims.
async fn claim_round(store: &PgStore, holders: &[Uuid], now: DateTime<Utc>) -> Vec<HashSet<Uuid>> {
    let mut claims = Vec::new();
    for &holder in holders {
        claims.push(claim(store, holder, now).await);
    }
    claims
}

/// Asserts that no instance is in two claims.
fn assert_disjoint(claims: &[HashSet<Uuid>]) {
    let mut seen = HashSet::new();
    for (index, claim) in claims.iter().enumerate() {
        for id in claim {
            assert!(
                seen.insert(*id),
                "instance {id} claimed twice (holder {index})"
            );
        }
    }
}

fn union(claims: &[HashSet<Uuid>]) -> HashSet<Uuid> {
    claims.iter().flatten().copied().collect()
}

fn sizes(claims: &[HashSet<Uuid>]) -> Vec<usize> {
    claims.iter().map(HashSet::len).collect()
}

#[tokio::test]
async fn holders_split_monitored_instances() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let monitored = monitored_instances(&store, "split", 33, 3).await;
    let holders = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];

    // The first holder takes everything while it is alone; later holders find nothing free.
    let first = claim_round(&store, &holders, at(0)).await;
    assert_disjoint(&first);
    assert_eq!(sizes(&first), [30, 0, 0]);

    // Once all three are live, the first releases down to its share and the others claim.
    let second = claim_round(&store, &holders, at(1)).await;
    assert_disjoint(&second);
    assert_eq!(sizes(&second), [10, 10, 10]);
    assert_eq!(union(&second), monitored);

    let third = claim_round(&store, &holders, at(2)).await;
    assert_eq!(third, second, "stable shares stay with their holders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_are_disjoint() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let monitored = monitored_instances(&store, "race", 60, 0).await;
    let holders: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();

    let mut covered = false;
    for round in 0..10 {
        let tasks: Vec<_> = holders
            .iter()
            .map(|&holder| {
                let store = store.clone();
                tokio::spawn(async move { claim(&store, holder, at(round)).await })
            })
            .collect();
        let mut claims = Vec::new();
        for task in tasks {
            claims.push(task.await.expect("claim task"));
        }
        assert_disjoint(&claims);
        // From the second round on every holder is live, so each claim is at most 60 / 4.
        if round > 0 {
            for claim in &claims {
                assert!(
                    claim.len() <= 15,
                    "claim above the fair share: {:?}",
                    sizes(&claims)
                );
            }
        }
        if union(&claims) == monitored {
            covered = true;
            break;
        }
    }
    assert!(
        covered,
        "four holders never covered all 60 instances in 10 rounds"
    );
}

#[tokio::test]
async fn silent_holder_loses_instances() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let monitored = monitored_instances(&store, "silent", 20, 0).await;
    let (alive, silent) = (Uuid::new_v4(), Uuid::new_v4());
    let _ = claim_round(&store, &[alive, silent], at(0)).await;
    let shares = claim_round(&store, &[alive, silent], at(1)).await;
    assert_eq!(sizes(&shares), [10, 10]);
    let silent_share = shares[1].clone();

    // The silent holder's leases last until at(31); before that nobody takes them.
    let before = claim(&store, alive, at(30)).await;
    assert_eq!(before, shares[0]);

    let after = claim(&store, alive, at(32)).await;
    assert_eq!(after, monitored);
    assert!(silent_share.is_subset(&after));
    let live = store.live_replicas(at(32)).await.expect("live replicas");
    assert_eq!(live, 1);
}

#[tokio::test]
async fn shares_follow_replica_count() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let monitored = monitored_instances(&store, "shares", 10, 0).await;
    let mut holders = vec![Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];

    let _ = claim_round(&store, &holders, at(0)).await;
    let three = claim_round(&store, &holders, at(1)).await;
    assert_disjoint(&three);
    assert_eq!(union(&three), monitored);
    assert_eq!(sizes(&three).iter().max(), Some(&4), "ceil(10 / 3) = 4");

    holders.push(Uuid::new_v4());
    let _ = claim_round(&store, &holders, at(2)).await;
    let four = claim_round(&store, &holders, at(3)).await;
    assert_disjoint(&four);
    assert_eq!(union(&four), monitored);
    assert_eq!(sizes(&four).iter().max(), Some(&3), "ceil(10 / 4) = 3");
    assert_eq!(store.live_replicas(at(3)).await.expect("live replicas"), 4);
}

#[tokio::test]
async fn stopping_monitoring_releases_lease() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let _ = monitored_instances(&store, "stop", 2, 0).await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(claim(&store, first, at(0)).await.len(), 2);
    assert!(claim(&store, second, at(1)).await.is_empty());

    // Restarting monitoring frees the instance, so the second holder claims it at once.
    store.set_monitoring("stop-1", false).await.expect("stop");
    store.set_monitoring("stop-1", true).await.expect("start");
    let taken = claim(&store, second, at(2)).await;
    let restarted = store
        .instance("stop-1")
        .await
        .expect("read instance")
        .expect("instance exists");
    assert_eq!(taken, HashSet::from([restarted.id]));
}

#[tokio::test]
async fn released_claims_are_free_at_once() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let monitored = monitored_instances(&store, "release", 5, 0).await;
    let (leaving, staying) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(claim(&store, leaving, at(0)).await, monitored);

    store.release_claims(leaving).await.expect("release");
    assert_eq!(store.live_replicas(at(1)).await.expect("live replicas"), 0);
    assert_eq!(claim(&store, staying, at(1)).await, monitored);
}

#[tokio::test]
async fn claim_with_one_holder_returns_everything() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let monitored = monitored_instances(&store, "alone", 7, 2).await;
    let holder = Uuid::new_v4();
    assert_eq!(claim(&store, holder, at(0)).await, monitored);
    // A restarted process has a new holder id; it waits for the old leases to end.
    let restarted = Uuid::new_v4();
    assert!(claim(&store, restarted, at(10)).await.is_empty());
    assert_eq!(claim(&store, restarted, at(31)).await, monitored);
}

/// Two stores with pools of their own, as two replicas have, record evaluations of the same
/// state at once, again and again: each time exactly one applies and the other conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_replicas_apply_once() {
    let database = TestDatabase::create().await;
    let (left, right) = (database.store().await, database.store().await);
    let ids = monitored_instances(&left, "racing", 1, 0).await;
    let id = *ids.iter().next().expect("one instance");
    let policy = Policy {
        cooldown: Duration::ZERO,
        max_level: 100,
        ..Policy::default()
    };

    let rounds: u32 = 40;
    for round in 0..rounds {
        let now = at(i64::from(round) * 10);
        let samples: Vec<(Uuid, Sample)> = (0..4)
            .map(|n| {
                let taken = now - TimeDelta::seconds(3 - n);
                let sample = Sample::new(taken, 95.0, Some(95.0), 1_000.0, 500.0);
                (id, sample.expect("valid sample"))
            })
            .collect();
        left.append_samples(&samples).await.expect("append");
        let instance = left
            .instance("racing-0")
            .await
            .expect("read")
            .expect("exists");
        let record = evaluation(&left, &policy, id, instance.scale, now).await;
        assert!(
            record.evaluation.outcome.is_applied(),
            "round {round} would scale up"
        );

        let (a, b) = tokio::join!(
            tokio::spawn({
                let (store, record) = (left.clone(), record.clone());
                async move { store.record_evaluation(record).await }
            }),
            tokio::spawn({
                let (store, record) = (right.clone(), record.clone());
                async move { store.record_evaluation(record).await }
            }),
        );
        let results = [a.expect("left task"), b.expect("right task")];
        let applied = results.iter().filter(|result| result.is_ok()).count();
        let conflicts = results
            .iter()
            .filter(|result| matches!(result, Err(Error::Conflict { .. })))
            .count();
        assert_eq!(applied, 1, "round {round}: {results:?}");
        assert_eq!(conflicts, 1, "round {round}: {results:?}");
    }

    let instance = right
        .instance("racing-0")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(instance.scale.level, 1 + rounds);
    let decisions = right.recent_decisions(id, 1000).await.expect("decisions");
    assert_eq!(decisions.len(), usize::try_from(rounds).expect("fits"));
}

async fn evaluation(
    store: &PgStore,
    policy: &Policy,
    instance: Uuid,
    state: ScaleState,
    now: DateTime<Utc>,
) -> NewDecisionRecord {
    NewDecisionRecord::evaluate_stored(store, policy, instance, state, now)
        .await
        .expect("read window")
}
