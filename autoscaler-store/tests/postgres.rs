//! The conformance suite and PostgreSQL-specific behaviour of `PgStore`, against a real server.
//!
//! Each test creates a database of its own on the server at `AUTOSCALER_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and drops it afterwards. The outage
//! and plain-server tests run a throwaway cluster of their own instead (see
//! `postgres_support::cluster`).

mod postgres_support;

use std::sync::Arc;
use std::time::Duration;

use autoscaler_core::store::{Error, NewDecisionRecord, NewInstance, NewUser};
use autoscaler_core::{Policy, Sample, ScaleState, Store};
use autoscaler_store::PgStore;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use postgres_support::TestDatabase;
use postgres_support::cluster::{Cluster, free_port};
use uuid::Uuid;

async fn fresh_database() -> TestDatabase {
    TestDatabase::create().await
}

async fn open_store(database: &TestDatabase) -> Arc<dyn Store> {
    Arc::new(database.store().await)
}

autoscaler_core::store_conformance_tests!(fresh_database, open_store);

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid start time")
        + TimeDelta::seconds(seconds)
}

fn sample(taken_at: DateTime<Utc>, cpu: f64) -> Sample {
    Sample::new(taken_at, cpu, Some(45.0), 1_000.0, 500.0).expect("valid sample")
}

/// Registers a user and an instance `instance_id` owned by it.
async fn register(store: &PgStore, instance_id: &str) -> autoscaler_core::store::Instance {
    let owner = store
        .create_user(NewUser {
            email: format!("{instance_id}@example.com"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        })
        .await
        .expect("create user");
    store
        .create_instance(NewInstance {
            owner_id: owner.id,
            instance_id: instance_id.to_owned(),
            instance_type: "t2.micro".to_owned(),
            region: "mock".to_owned(),
            is_mock: true,
        })
        .await
        .expect("create instance")
}

/// Evaluates the instance's stored window at `now` with the default policy.
async fn evaluation_at(
    store: &PgStore,
    instance: Uuid,
    state: ScaleState,
    now: DateTime<Utc>,
) -> NewDecisionRecord {
    NewDecisionRecord::evaluate_stored(store, &Policy::default(), instance, state, now)
        .await
        .expect("read window")
}

/// Fails the test if `future` has not finished after a minute, so that a hung connection
/// cannot stall the suite. The bound catches hangs and is not a timing check.
async fn within_a_minute<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("store call still running after 60 s")
}

#[tokio::test]
async fn second_connect_is_noop() {
    let database = TestDatabase::create().await;
    let first = PgStore::connect(database.url())
        .await
        .expect("first connect");
    let instance = register(&first, "i-second-connect").await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(first.pool())
        .await
        .expect("count migrations");

    let second = PgStore::connect(database.url())
        .await
        .expect("second connect");
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(second.pool())
        .await
        .expect("count migrations");
    assert!(applied >= 1, "the first connect applies the migrations");
    assert_eq!(again, applied);
    let found = second
        .instance("i-second-connect")
        .await
        .expect("read instance");
    assert_eq!(found, Some(instance));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_connects_succeed() {
    let database = TestDatabase::create().await;
    let url = database.url().to_owned();
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    for connect in connects {
        let store = connect
            .await
            .expect("task finished")
            .expect("concurrent connect migrates or waits for the migration");
        assert_eq!(store.monitored_instances().await.expect("read"), vec![]);
    }
}

#[tokio::test]
async fn both_url_schemes_connect() {
    let database = TestDatabase::create().await;
    let url = database.url();
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .expect("URL has a scheme");
    for scheme in ["postgres", "postgresql"] {
        let store = PgStore::connect(&format!("{scheme}://{rest}"))
            .await
            .unwrap_or_else(|error| panic!("{scheme}:// failed: {error}"));
        assert_eq!(store.monitored_instances().await.expect("read"), vec![]);
    }
}

#[tokio::test]
async fn other_url_scheme_is_rejected_without_password() {
    let error = PgStore::connect("mysql://admin:s3cret@127.0.0.1:3306/autoscaler")
        .await
        .expect_err("mysql:// must be rejected");
    let message = error.to_string();
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(message.contains("postgres://"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn invalid_sslmode_is_rejected() {
    let url = "postgres://postgres:s3cret@127.0.0.1:5432/postgres?sslmode=sometimes";
    let error = PgStore::connect(url)
        .await
        .expect_err("sslmode=sometimes must be rejected");
    let message = error.to_string();
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(message.contains("sometimes"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn sslmode_require_encrypts() {
    let database = TestDatabase::create().await;
    let store = PgStore::connect(&format!("{}?sslmode=require", database.url()))
        .await
        .expect("connect with sslmode=require; the test server needs ssl = on");
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .expect("read pg_stat_ssl");
    assert!(encrypted);
}

#[tokio::test(flavor = "multi_thread")]
async fn sslmode_require_fails_without_tls() {
    let cluster = Cluster::init();
    cluster.start();
    let error = PgStore::connect(&format!("{}?sslmode=require", cluster.url()))
        .await
        .expect_err("a server without TLS must be rejected");
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(error.to_string().contains("TLS"), "{error}");
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let error = within_a_minute(PgStore::connect(&url))
        .await
        .expect_err("nothing listens on the port");
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
}

#[tokio::test]
async fn missing_database_is_backend_error() {
    let url = postgres_support::with_database(
        &postgres_support::admin_url(),
        &format!("autoscaler_missing_{}", Uuid::new_v4().simple()),
    );
    let error = PgStore::connect(&url)
        .await
        .expect_err("the database does not exist");
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test]
async fn timestamps_truncate_to_microseconds() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let instance = register(&store, "i-micros").await;
    let base = at(0);
    let batch = [
        (
            instance.id,
            sample(base + TimeDelta::nanoseconds(1_000_400), 10.0),
        ),
        (
            instance.id,
            sample(base + TimeDelta::nanoseconds(1_000_900), 20.0),
        ),
    ];
    let stored = store.append_samples(&batch).await.expect("append");
    assert_eq!(stored, 1);
    let read = store.recent_samples(instance.id, 10).await.expect("read");
    assert_eq!(read.len(), 1);
    assert_eq!(
        read[0].sample.timestamp(),
        base + TimeDelta::microseconds(1_000)
    );
    assert_eq!(read[0].sample.cpu_utilization(), 10.0);
}

#[tokio::test]
async fn purge_deletes_in_bounded_batches() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let instance = register(&store, "i-purge").await;
    let cutoff = at(3_600);
    // Five samples before the cutoff, three at or after it.
    let batch: Vec<_> = [0, 600, 1_200, 1_800, 2_400, 3_600, 4_200, 4_800]
        .into_iter()
        .map(|second| (instance.id, sample(at(second), 45.0)))
        .collect();
    store.append_samples(&batch).await.expect("append");
    let mut state = instance.scale;
    for minute in [10, 20, 30, 70] {
        let record = evaluation_at(&store, instance.id, state, at(minute * 60)).await;
        state = record.next_state();
        store.record_evaluation(record).await.expect("record");
    }

    // Three old decisions and five old samples: a batch of 2 deletes 2 + 2, then 2 + 1,
    // then 1 + 0, then nothing.
    let mut deleted = Vec::new();
    for _ in 0..4 {
        deleted.push(store.purge_before(cutoff, 2).await.expect("purge"));
    }
    assert_eq!(deleted, vec![4, 3, 1, 0]);

    let samples = store.recent_samples(instance.id, 100).await.expect("read");
    let kept_times: Vec<_> = samples.iter().map(|s| s.sample.timestamp()).collect();
    assert_eq!(kept_times, vec![at(4_800), at(4_200), at(3_600)]);
    let decisions = store
        .recent_decisions(instance.id, 100)
        .await
        .expect("read");
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].evaluated_at, at(4_200));
}

/// Cuts each line of a query plan to 160 characters, because the plan repeats every instance
/// id.
fn shorten_lines(plan: &str) -> String {
    plan.lines()
        .map(|line| line.chars().take(160).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn window_read_uses_index() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let now = at(100 * 30);

    // 1,000 instances with 100 samples each, 30 s apart, the newest at `now`.
    let mut ids = Vec::new();
    for n in 0..1_000 {
        ids.push(register(&store, &format!("i-plan-{n:04}")).await.id);
    }
    let mut batch = Vec::new();
    for &id in &ids {
        for step in 0..100_i32 {
            let cpu = f64::from(step % 50) + 25.0;
            let taken_at = now - TimeDelta::seconds(30 * i64::from(step));
            batch.push((id, sample(taken_at, cpu)));
        }
    }
    for chunk in batch.chunks(10_000) {
        let stored = store.append_samples(chunk).await.expect("append");
        assert_eq!(stored, chunk.len());
    }
    sqlx::query("ANALYZE samples")
        .execute(store.pool())
        .await
        .expect("analyze");

    // PostgreSQL picks the (instance, taken_at) index for a few instances and the taken_at
    // index when most instances are asked for; either is a range scan.
    let since = now - TimeDelta::minutes(5);
    for (instances, index) in [
        (&ids[..], "samples_taken_at"),
        (&ids[..10], "samples_instance_taken_at_key"),
        (&ids[..1], "samples_instance_taken_at_key"),
    ] {
        let plan = store
            .explain_windows(instances, since, now)
            .await
            .expect("explain");
        let short_plan = shorten_lines(&plan);
        assert!(!plan.contains("Seq Scan"), "{short_plan}");
        assert!(
            plan.contains(&format!("Index Scan on {index}")),
            "{short_plan}"
        );
    }
    let windows = store.windows(&ids, since, now).await.expect("read windows");
    assert_eq!(windows.len(), 1_000);
    assert!(windows.values().all(|window| window.len() == 10));
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_is_unavailable_then_recovers() {
    let cluster = Cluster::init();
    cluster.start();
    let store = PgStore::connect(&cluster.url())
        .await
        .expect("connect to the throwaway cluster");
    register(&store, "i-outage").await;
    let instance = store
        .set_monitoring("i-outage", true)
        .await
        .expect("monitor");

    // A fast shutdown sends open sessions an error before it closes them. An immediate one
    // drops them as a crash would.
    for (round, mode) in [(0, "fast"), (1, "immediate")] {
        let now = at(600 * (round + 1));
        let batch = [(instance.id, sample(now, 45.0))];
        store.append_samples(&batch).await.expect("append");
        let current = store
            .instance("i-outage")
            .await
            .expect("read")
            .expect("exists");
        let record = evaluation_at(&store, instance.id, current.scale, now).await;

        cluster.stop(mode);
        let read = within_a_minute(store.monitored_instances()).await;
        assert!(
            matches!(read, Err(Error::Unavailable { .. })),
            "{mode}: {read:?}"
        );
        let later = [(instance.id, sample(now + TimeDelta::seconds(30), 45.0))];
        let write = within_a_minute(store.append_samples(&later)).await;
        assert!(
            matches!(write, Err(Error::Unavailable { .. })),
            "{mode}: {write:?}"
        );
        let recorded = within_a_minute(store.record_evaluation(record.clone())).await;
        assert!(
            matches!(recorded, Err(Error::Unavailable { .. })),
            "{mode}: {recorded:?}"
        );
        let reconnect = within_a_minute(PgStore::connect(&cluster.url())).await;
        assert!(
            matches!(reconnect, Err(Error::Unavailable { .. })),
            "{mode}: {reconnect:?}"
        );

        cluster.start();
        let monitored = within_a_minute(store.monitored_instances())
            .await
            .expect("read after restart");
        let ids: Vec<_> = monitored.iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![instance.id], "{mode}");
        let stored = within_a_minute(store.append_samples(&later))
            .await
            .expect("append after restart");
        assert_eq!(stored, 1, "{mode}");
        within_a_minute(store.record_evaluation(record))
            .await
            .expect("record after restart");
    }
}
