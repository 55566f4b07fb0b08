//! The server's retention job: samples and decisions older than `--retention-days` (default 7)
//! are deleted in batches of `--purge-batch-size`, on the embedded database and on PostgreSQL.
//!
//! The API cannot create old rows, so each test stops the server, writes ten-day-old history
//! straight into its store, and starts the server again.

mod common;
#[path = "../../autoscaler-store/tests/postgres_support/mod.rs"]
mod postgres_support;

use std::path::Path;
use std::sync::Arc;

use autoscaler_core::store::NewDecisionRecord;
use autoscaler_core::{Policy, Sample, Store};
use autoscaler_store::{PgStore, RedbStore};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use common::{Launch, Server, eventually};
use postgres_support::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const INSTANCE: &str = "mock-history";

/// Message of the scheduler's log line after a retention run that deleted rows.
const PURGE_MESSAGE: &str = "deleted old samples and decisions";

/// Where the server under test keeps its data.
enum Backend {
    Redb,
    Postgres(TestDatabase),
}

impl Backend {
    /// Returns `launch` with the database settings of this backend.
    fn launch(&self, launch: Launch) -> Launch {
        match self {
            Backend::Redb => launch,
            Backend::Postgres(database) => launch.postgres(database.url()),
        }
    }

    /// Opens the store the server in `dir` uses. The server must be stopped for redb, which
    /// locks its file.
    async fn open(&self, dir: &Path) -> Arc<dyn Store> {
        match self {
            Backend::Redb => {
                let path = dir
                    .join("data")
                    .join(autoscaler_warp::config::DATABASE_FILE);
                let store = RedbStore::open(&path)
                    .unwrap_or_else(|error| panic!("opening {} failed: {error}", path.display()));
                Arc::new(store)
            }
            Backend::Postgres(database) => {
                let store = PgStore::connect(database.url())
                    .await
                    .unwrap_or_else(|error| panic!("connecting to the test database: {error}"));
                Arc::new(store)
            }
        }
    }
}

#[tokio::test]
async fn retention_on_redb() {
    let (server, _) = retention_deletes_old_history(&Backend::Redb).await;
    assert!(server.stop().success());
}

#[tokio::test]
async fn retention_on_postgres() {
    let backend = Backend::Postgres(TestDatabase::create().await);
    let (server, api) = retention_deletes_old_history(&backend).await;

    // PostgreSQL takes writes while the server runs, so rows that age past the retention
    // period later go in the next run of the job, one purge interval later.
    let store = backend.open(Path::new("")).await;
    let instance = stored_instance(&*store).await;
    let base = Utc::now() - TimeDelta::days(9);
    append_high_load(&*store, instance, base, 2).await;

    let (deleted, batches) = eventually("a second retention run", || async {
        purge_runs(&server.output()).get(1).copied()
    })
    .await;
    assert_eq!(deleted, 2, "{}", server.output());
    assert_eq!(batches, 1, "{}", server.output());
    assert_eq!(
        old_timestamps(&api.metrics(INSTANCE).await),
        Vec::<String>::new()
    );
    assert!(server.stop().success());
}

/// Stores history older and younger than the default retention of 7 days, restarts the server
/// with a batch size of 5 and checks that exactly the old rows go, in three batches. Returns
/// the running server and a logged-in client.
async fn retention_deletes_old_history(backend: &Backend) -> (Server, common::Api) {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = backend.launch(
        Launch::ticks(60)
            .arg("--purge-batch-size", "5")
            .arg("--purge-interval-secs", "1"),
    );

    // First run: the user, the instance and a sample of today, through the API.
    let server = Server::start(dir.path(), &launch);
    let api = server.api().sign_up("ops@example.com", "longenough").await;
    api.register_instance(INSTANCE, true).await;
    let now_sample = json!({"instance_id": INSTANCE, "cpu_utilization": 50.0});
    let simulated = api.post("/api/metrics/simulate", now_sample).await;
    assert_eq!(
        simulated.status,
        StatusCode::CREATED,
        "{:?}",
        simulated.body
    );
    assert!(server.stop().success());

    // Between runs: 12 samples and 3 decisions from 10 days ago, which are past the retention
    // period, and 2 samples and 1 decision from 6 days ago, which are not.
    let now = Utc::now();
    let old = now - TimeDelta::days(10);
    let young = now - TimeDelta::days(6);
    {
        let store = backend.open(dir.path()).await;
        let instance = stored_instance(&*store).await;
        append_high_load(&*store, instance, old, 12).await;
        append_high_load(&*store, instance, young, 2).await;
        let minutes = TimeDelta::minutes;
        let times = [
            old + minutes(2),
            old + minutes(4),
            old + minutes(6),
            young + minutes(1),
        ];
        for evaluated_at in times {
            record_evaluation(&*store, instance, evaluated_at).await;
        }
    }

    // Second run: the retention job runs at start-up. 15 old rows in batches of at most 5
    // samples and 5 decisions: 5 + 3, then 5 + 0, then 2 + 0.
    let server = Server::start(dir.path(), &launch);
    let (deleted, batches) = eventually("a retention run", || async {
        purge_runs(&server.output()).first().copied()
    })
    .await;
    assert_eq!(deleted, 15, "{}", server.output());
    assert_eq!(batches, 3, "{}", server.output());

    let api = api.on(&server);
    let metrics = api.metrics(INSTANCE).await;
    assert_eq!(old_timestamps(&metrics), Vec::<String>::new());
    assert_eq!(metrics.len(), 3, "{metrics:?}");
    let decisions = api.decisions(INSTANCE).await;
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(old_timestamps(&decisions), Vec::<String>::new());

    // Deleting history leaves the scale level that the old scale-up applied.
    let instance = api.instance(INSTANCE).await;
    assert_eq!(instance["current_scale_level"], 2);
    (server, api)
}

/// Returns the database id of the test instance.
async fn stored_instance(store: &dyn Store) -> Uuid {
    let instance = store.instance(INSTANCE).await.expect("read instance");
    instance.expect("the instance was registered").id
}

/// Stores `count` samples of 95 % CPU, 30 s apart, starting at `start`.
async fn append_high_load(store: &dyn Store, instance: Uuid, start: DateTime<Utc>, count: i32) {
    let batch: Vec<_> = (0..count)
        .map(|i| {
            let taken_at = start + TimeDelta::seconds(30 * i64::from(i));
            let sample = Sample::new(taken_at, 95.0, Some(50.0), 1_000.0, 500.0).expect("valid");
            (instance, sample)
        })
        .collect();
    let stored = store.append_samples(&batch).await.expect("append samples");
    assert_eq!(stored, batch.len());
}

/// Evaluates the stored window at `evaluated_at` with the default policy and records it, as
/// the decision tick would have then.
async fn record_evaluation(store: &dyn Store, instance: Uuid, evaluated_at: DateTime<Utc>) {
    let state = store
        .instance(INSTANCE)
        .await
        .expect("read instance")
        .expect("instance exists")
        .scale;
    let record = NewDecisionRecord::evaluate_stored(
        store,
        &Policy::default(),
        instance,
        state,
        evaluated_at,
    )
    .await
    .expect("read window");
    store.record_evaluation(record).await.expect("record");
}

/// Returns the `deleted` and `batches` fields of every retention log line in `output`.
fn purge_runs(output: &str) -> Vec<(u64, u64)> {
    output
        .lines()
        .filter(|line| line.contains(PURGE_MESSAGE))
        .map(|line| (log_field(line, "deleted"), log_field(line, "batches")))
        .collect()
}

/// Returns the numeric field `name` of a log line such as `... deleted=15 batches=3 ...`.
fn log_field(line: &str, name: &str) -> u64 {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {name} in log line {line:?}"))
}

/// Returns the timestamps of the samples or decisions that are older than 7 days.
fn old_timestamps(rows: &[Value]) -> Vec<String> {
    let limit = (Utc::now() - TimeDelta::days(7)).naive_utc();
    rows.iter()
        .map(|row| row["timestamp"].as_str().expect("timestamp").to_owned())
        .filter(|timestamp| {
            let parsed = NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.f")
                .unwrap_or_else(|error| panic!("timestamp {timestamp}: {error}"));
            parsed < limit
        })
        .collect()
}
