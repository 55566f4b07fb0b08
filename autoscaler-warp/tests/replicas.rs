//! Several `autoscaler-server` replicas on one PostgreSQL database share the monitored
//! instances: each sample is decided at most once, none is left undecided, and a killed
//! replica's instances move to the others when its leases end.
//!
//! The tests need the PostgreSQL server at 127.0.0.1:5432 (user `postgres`, no password) or
//! the one named by `AUTOSCALER_TEST_DATABASE_URL`, and fail when it is unreachable.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use autoscaler_core::Store;
use autoscaler_core::store::{Instance, NewInstance, NewUser};
use autoscaler_store::PgStore;
use chrono::{DateTime, Utc};
use common::database::TestDatabase;
use common::{Launch, Server, TEST_SECRET, eventually};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

/// Monitored mock instances in the shared-work test.
const INSTANCES: usize = 300;

/// Lease in seconds: four decision periods of one second.
const LEASE_SECS: u64 = 4;

/// Replica settings: a sample every 2 s, a decision tick every second (set by the harness).
fn replica_launch(database_url: &str) -> Launch {
    Launch::ticks(2)
        .arg("--lease-secs", &LEASE_SECS.to_string())
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET_KEY", TEST_SECRET)
}

/// Returns the `GET /api/status` body of `server`.
async fn status(server: &Server) -> Value {
    let reply = server.api().get("/api/status").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

fn held(status: &Value) -> u64 {
    status["held_instances"].as_u64().unwrap_or(u64::MAX)
}

/// Registers `count` monitored mock instances of one user directly in the database.
async fn register_monitored(store: &PgStore, count: usize) -> Vec<Instance> {
    let owner = store
        .create_user(NewUser {
            email: "fleet@example.com".to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        })
        .await
        .expect("create user");
    let mut instances = Vec::with_capacity(count);
    for n in 0..count {
        let instance_id = format!("mock-fleet-{n:03}");
        store
            .create_instance(NewInstance {
                owner_id: owner.id,
                instance_id: instance_id.clone(),
                instance_type: "t2.micro".to_owned(),
                region: "mock".to_owned(),
                is_mock: true,
            })
            .await
            .expect("create instance");
        let monitored = store
            .set_monitoring(&instance_id, true)
            .await
            .expect("start monitoring");
        instances.push(monitored);
    }
    instances
}

/// Per instance, the samples stored and the samples that decisions were made on.
struct History {
    samples: Vec<DateTime<Utc>>,
    decided: Vec<DateTime<Utc>>,
    decided_at: Vec<DateTime<Utc>>,
}

async fn history(store: &PgStore, instance: &Instance) -> History {
    let samples = store
        .recent_samples(instance.id, 100_000)
        .await
        .expect("read samples");
    let decisions = store
        .recent_decisions(instance.id, 100_000)
        .await
        .expect("read decisions");
    History {
        samples: samples.iter().map(|s| s.sample.timestamp()).collect(),
        decided: decisions
            .iter()
            .filter_map(|d| d.sample().map(autoscaler_core::Sample::timestamp))
            .collect(),
        decided_at: decisions.iter().map(|d| d.evaluated_at).collect(),
    }
}

/// Returns the replica ids whose claims hold `instances` right now, by instance.
async fn lease_holders(store: &PgStore) -> HashMap<Uuid, Option<Uuid>> {
    let rows: Vec<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT id, lease_holder FROM instances WHERE is_monitoring")
            .fetch_all(store.pool())
            .await
            .expect("read lease holders");
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_work_exactly_once() {
    let database = TestDatabase::create().await;
    let url = database.url();
    let store = PgStore::connect(&url).await.expect("connect and migrate");
    let instances = register_monitored(&store, INSTANCES).await;
    let launch = replica_launch(&url);

    let dirs: Vec<tempfile::TempDir> = (0..4)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    let first = Server::start(dirs[0].path(), &launch);
    let second = Server::start(dirs[1].path(), &launch);
    let third = Server::start(dirs[2].path(), &launch);

    // Each replica settles on its fair share, ceil(300 / 3), and logs its id at start.
    for server in [&first, &second, &third] {
        eventually("a replica holding 100 instances", || async {
            (held(&status(server).await) == 100).then_some(())
        })
        .await;
        let status = status(server).await;
        assert_eq!(status["backend"], "postgresql");
        assert_eq!(status["lease_seconds"], LEASE_SECS);
        let replica_id = status["replica_id"]
            .as_str()
            .expect("replica_id")
            .to_owned();
        let output = server.output();
        assert!(output.contains("replica started"), "{output}");
        assert!(output.contains(&replica_id), "{output}");
        assert!(
            output.contains("number of held instances changed"),
            "{output}"
        );
    }

    // What one replica writes, the others serve.
    let api = first.api().sign_up("ops@example.com", "longenough").await;
    api.on(&second).register_instance("mock-shared", true).await;
    let listed = api.on(&third).instance("mock-shared").await;
    assert_eq!(listed["is_monitoring"], false);

    // Run for at least 16 decision periods (8 samples of every instance), then kill the third
    // replica without any clean-up.
    eventually("eight samples of every instance", || async {
        let fewest: Option<i64> = sqlx::query_scalar(
            "SELECT count(*) FROM samples GROUP BY instance ORDER BY count(*) LIMIT 1",
        )
        .fetch_optional(store.pool())
        .await
        .expect("count samples");
        fewest.is_some_and(|fewest| fewest >= 8).then_some(())
    })
    .await;
    let third_id: Uuid = status(&third).await["replica_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("replica id of the third replica");
    let third_status = third.stop_with("KILL");
    assert!(!third_status.success());
    // Every decision of the killed replica was made before this instant.
    let killed_at = Utc::now();
    let orphaned: HashSet<Uuid> = lease_holders(&store)
        .await
        .into_iter()
        .filter(|(_, holder)| *holder == Some(third_id))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(orphaned.len(), 100, "the killed replica's share");
    let lease_end: DateTime<Utc> =
        sqlx::query_scalar("SELECT lease_until FROM replicas WHERE holder = $1")
            .bind(third_id)
            .fetch_one(store.pool())
            .await
            .expect("the killed replica's lease end");

    // The survivors take over the orphaned instances once the leases end: ceil(300 / 2).
    for server in [&first, &second] {
        eventually("a survivor holding 150 instances", || async {
            (held(&status(server).await) == 150).then_some(())
        })
        .await;
    }
    let by_id: HashMap<Uuid, &Instance> = instances.iter().map(|i| (i.id, i)).collect();
    let mut takeover = Duration::ZERO;
    for id in &orphaned {
        let instance = by_id.get(id).expect("registered instance");
        let after = eventually("a decision of an orphaned instance", || async {
            let history = history(&store, instance).await;
            history
                .decided_at
                .iter()
                .copied()
                .filter(|at| *at >= lease_end)
                .min()
        })
        .await;
        takeover = takeover.max((after - lease_end).to_std().unwrap_or(Duration::ZERO));
    }
    println!(
        "orphaned instances decided again at most {takeover:?} after the lease ended \
         (lease {LEASE_SECS} s, decision period 1 s)"
    );

    // Ten more decision periods on two replicas.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(first.stop().success());
    assert!(second.stop().success());

    // The stopped replicas released their claims, so a new replica takes every instance at
    // once and decides what they collected last. It collects once, at start.
    let once = Launch::ticks(3600)
        .arg("--lease-secs", &LEASE_SECS.to_string())
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET_KEY", TEST_SECRET);
    let last = Server::start(dirs[3].path(), &once);
    eventually("the new replica holding every instance", || async {
        (held(&status(&last).await) == 300).then_some(())
    })
    .await;
    eventually("every instance decided on its newest sample", || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM instances i WHERE i.is_monitoring AND \
             i.last_evaluated_sample IS DISTINCT FROM \
             (SELECT max(taken_at) FROM samples s WHERE s.instance = i.id)",
        )
        .fetch_one(store.pool())
        .await
        .expect("count undecided instances");
        (pending == 0).then_some(())
    })
    .await;
    assert!(last.stop().success());

    let mut skipped_total = 0;
    let mut samples_total = 0;
    for instance in &instances {
        let history = history(&store, instance).await;
        let decided: HashSet<DateTime<Utc>> = history.decided.iter().copied().collect();
        assert_eq!(
            decided.len(),
            history.decided.len(),
            "{} was decided twice on one sample",
            instance.instance_id
        );
        let samples: HashSet<DateTime<Utc>> = history.samples.iter().copied().collect();
        assert!(
            decided.is_subset(&samples),
            "{} has decisions on unknown samples",
            instance.instance_id
        );
        assert!(
            history.samples.len() >= 12,
            "{} has {} samples; the run covers at least 12 collection periods",
            instance.instance_id,
            history.samples.len()
        );
        // Each hand-over (rebalancing at start, the kill, the final replica) can supersede at
        // most the one sample the previous holder collected and had not decided yet.
        let skipped = samples.difference(&decided).count();
        assert!(
            skipped <= 3,
            "{} skipped {skipped} of {} samples",
            instance.instance_id,
            samples.len()
        );
        skipped_total += skipped;
        samples_total += samples.len();

        let stored = store
            .instance(&instance.instance_id)
            .await
            .expect("read instance")
            .expect("instance exists");
        let applied: Vec<_> = store
            .recent_decisions(instance.id, 100_000)
            .await
            .expect("read decisions")
            .into_iter()
            .filter(|d| d.applied())
            .collect();
        let mut level = 1_i64;
        for decision in applied.iter().rev() {
            assert_eq!(
                i64::from(decision.level_before),
                level,
                "{}: an action applied on a stale level",
                instance.instance_id
            );
            level = i64::from(decision.level_after);
        }
        assert_eq!(
            i64::from(stored.scale.level),
            level,
            "{}",
            instance.instance_id
        );
    }
    println!("{skipped_total} of {samples_total} samples were superseded before a decision");

    // No replica decided for an orphaned instance between the kill and the end of its lease.
    for id in &orphaned {
        let instance = by_id.get(id).expect("registered instance");
        let history = history(&store, instance).await;
        let early: Vec<_> = history
            .decided_at
            .iter()
            .filter(|at| **at > killed_at && **at < lease_end)
            .collect();
        assert!(
            early.is_empty(),
            "{} decided before its lease ended: {early:?}",
            instance.instance_id
        );
    }

    drop(store);
    database.drop_database().await;
}

#[tokio::test]
async fn status_reports_embedded_replica() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &Launch::ticks(60));
    let api = server.api().sign_up("solo@example.com", "longenough").await;
    let before = status(&server).await;
    assert_eq!(before["backend"], "embedded");
    assert_eq!(before["held_instances"], 0);
    // With a 60 s collection period and 1 s decisions, the default lease is three seconds.
    assert_eq!(before["lease_seconds"], 3);

    for instance_id in ["mock-solo-1", "mock-solo-2"] {
        api.register_instance(instance_id, true).await;
        let started = api
            .patch(&format!("/api/instances/{instance_id}/monitor/start"))
            .await;
        assert_eq!(started.status, StatusCode::OK);
    }
    eventually("two held instances", || async {
        (held(&status(&server).await) == 2).then_some(())
    })
    .await;
    let after = status(&server).await;
    assert_eq!(after["replica_id"], before["replica_id"]);
    assert!(server.stop().success());
}
