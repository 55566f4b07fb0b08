//! The original service's Postman walkthrough, run against the real binary over HTTP, once on
//! the embedded database and once on PostgreSQL.
//!
//! The PostgreSQL runs create a database of their own on the server at 127.0.0.1:5432 (user
//! `postgres`, trust authentication), or on the server whose `postgres` database
//! `AUTOSCALER_TEST_DATABASE_URL` names, and fail when none is reachable.

mod common;
#[path = "../../autoscaler-store/tests/postgres_support/mod.rs"]
mod postgres_support;

use autoscaler_core::Store;
use common::{Launch, Server, eventually};
use postgres_support::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

const INSTANCE: &str = "mock-test-1";

/// Checks that the server kept the walkthrough's instance in `database`.
async fn assert_stored_in(database: &TestDatabase) {
    let store = database.store().await;
    let instance = store
        .instance(INSTANCE)
        .await
        .expect("read the test database");
    assert!(
        instance.is_some(),
        "{INSTANCE} is not in database {}",
        database.name()
    );
}

fn scale_ups(decisions: &[Value]) -> Vec<&Value> {
    decisions
        .iter()
        .filter(|d| d["decision"] == "scale_up")
        .collect()
}

// Mock samples every 5 s: few enough that the 10 simulated samples in the 5-minute window
// stay above the 80 % share of the sustained rule when the decision tick evaluates them.
const MOCK_INTERVAL_SECS: u64 = 5;

#[tokio::test]
async fn walkthrough_on_redb() {
    postman_walkthrough(Launch::ticks(MOCK_INTERVAL_SECS)).await;
}

#[tokio::test]
async fn walkthrough_on_postgres() {
    let database = TestDatabase::create().await;
    postman_walkthrough(Launch::ticks(MOCK_INTERVAL_SECS).postgres(database.url())).await;
    assert_stored_in(&database).await;
}

/// Registers, logs in, monitors a mock instance, simulates sustained load and checks that the
/// instance scales up exactly once, with the second scale-up blocked by the cooldown.
async fn postman_walkthrough(launch: Launch) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &launch);
    let anonymous = server.api();

    // Step 1: register and log in.
    let api = anonymous.sign_up("test@example.com", "testpass123").await;

    // Step 2: register a mock instance and start monitoring it.
    let instance = api.register_instance(INSTANCE, true).await;
    assert_eq!(instance["current_scale_level"], 1);
    assert_eq!(instance["cpu_capacity"], 100.0);
    let started = api
        .patch(&format!("/api/instances/{INSTANCE}/monitor/start"))
        .await;
    assert_eq!(started.status, StatusCode::OK);
    assert_eq!(started.body["message"], "Monitoring started successfully");

    // A mock sample arrives, in the 40-50 % range.
    let first = eventually("a mock sample", || async {
        api.metrics(INSTANCE).await.into_iter().next()
    })
    .await;
    let cpu = first["cpu_utilization"].as_f64().expect("cpu is a number");
    assert!((40.0..=50.0).contains(&cpu), "mock cpu {cpu}");

    // Step 3: simulate 10 minutes of 95 % CPU.
    let load = json!({
        "instance_id": INSTANCE,
        "cpu_utilization": 95.0,
        "memory_usage": 50.0,
        "duration_minutes": 10,
        "interval_seconds": 30,
    });
    let simulated = api.post("/api/metrics/simulate", load.clone()).await;
    assert_eq!(
        simulated.status,
        StatusCode::CREATED,
        "{:?}",
        simulated.body
    );
    assert_eq!(simulated.body["metrics_created"], 20);
    assert_eq!(
        simulated.body["message"],
        "Created 20 simulated metrics over 10 minutes"
    );

    // The decision tick scales up on the sustained rule.
    let decision = eventually("a scale_up decision", || async {
        scale_ups(&api.decisions(INSTANCE).await)
            .first()
            .map(|d| (*d).clone())
    })
    .await;
    assert_eq!(decision["rule"], "sustained_high");
    assert_eq!(decision["applied"], true);
    assert_eq!(decision["blocked_by"], Value::Null);
    assert_eq!(decision["level_before"], 1);
    assert_eq!(decision["level_after"], 2);
    assert_eq!(decision["cpu_utilization"], 95.0);
    let reason = decision["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("Sustained scale up: CPU > 90% for "),
        "{reason}"
    );
    assert!(
        reason.ends_with("of last 5 minutes (Current: 95.00%)"),
        "{reason}"
    );
    assert_eq!(decision["evidence"]["sustained_high"]["fired"], true);

    // The instance shows level 2 and capacity 150 %.
    let instance = api.instance(INSTANCE).await;
    assert_eq!(instance["current_scale_level"], 2);
    assert_eq!(instance["cpu_capacity"], 150.0);
    assert_eq!(instance["memory_capacity"], 150.0);
    assert_eq!(instance["network_capacity"], 150.0);

    // The decided-on sample is flagged as an outlier of the decision's type.
    let metrics = api.metrics(INSTANCE).await;
    let flagged: Vec<_> = metrics.iter().filter(|m| m["is_outlier"] == true).collect();
    assert!(!flagged.is_empty(), "no flagged sample in {metrics:?}");
    assert!(flagged.iter().all(|m| m["outlier_type"] == "scale_up"));

    // More sustained load during the 5-minute cooldown: decided, but not applied.
    let again = api.post("/api/metrics/simulate", load).await;
    assert_eq!(again.status, StatusCode::CREATED);
    let blocked = eventually("a second scale_up decision", || async {
        let decisions = api.decisions(INSTANCE).await;
        let ups = scale_ups(&decisions);
        (ups.len() >= 2).then(|| ups[0].clone())
    })
    .await;
    assert_eq!(blocked["applied"], false);
    assert_eq!(blocked["blocked_by"], "cooldown");
    assert_eq!(blocked["level_after"], 2);

    let decisions = api.decisions(INSTANCE).await;
    let applied = decisions.iter().filter(|d| d["applied"] == true).count();
    assert_eq!(applied, 1, "{decisions:?}");
    let instance = api.instance(INSTANCE).await;
    assert_eq!(instance["current_scale_level"], 2);
    assert_eq!(instance["cpu_capacity"], 150.0);

    let status = server.stop();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn instant_simulation_on_redb() {
    instant_simulation_keeps_absent_values(Launch::ticks(60)).await;
}

#[tokio::test]
async fn instant_simulation_on_postgres() {
    let database = TestDatabase::create().await;
    instant_simulation_keeps_absent_values(Launch::ticks(60).postgres(database.url())).await;
    assert_stored_in(&database).await;
}

/// Simulates one sample without memory and network out, and checks that both stay absent.
async fn instant_simulation_keeps_absent_values(launch: Launch) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &launch);
    let api = server
        .api()
        .sign_up("test@example.com", "testpass123")
        .await;
    api.register_instance(INSTANCE, true).await;

    let load = json!({"instance_id": INSTANCE, "cpu_utilization": 95.5, "network_in": 3072000});
    let reply = api.post("/api/metrics/simulate", load).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(
        reply.body["message"],
        "Simulated metric created successfully"
    );
    let metric = &reply.body["metric"];
    assert_eq!(metric["instance_id"], INSTANCE);
    assert_eq!(metric["cpu_utilization"], 95.5);
    assert_eq!(metric["network_in"], 3072000.0);
    assert_eq!(metric["memory_usage"], Value::Null);
    assert_eq!(metric["network_out"], Value::Null);

    let stored = api.metrics(INSTANCE).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], metric["id"]);
    assert_eq!(stored[0]["timestamp"], metric["timestamp"]);
    assert_eq!(stored[0]["memory_usage"], Value::Null);
    assert_eq!(stored[0]["is_outlier"], false);
    let timestamp = stored[0]["timestamp"].as_str().expect("timestamp");
    let parsed = chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.6f");
    assert!(parsed.is_ok(), "{timestamp}");
    assert_eq!(
        timestamp.len(),
        "2026-01-22T05:16:25.123456".len(),
        "{timestamp}"
    );
}

#[tokio::test]
async fn recommend_only_on_redb() {
    recommend_only_records_without_applying(Launch::ticks(MOCK_INTERVAL_SECS)).await;
}

#[tokio::test]
async fn recommend_only_on_postgres() {
    let database = TestDatabase::create().await;
    let launch = Launch::ticks(MOCK_INTERVAL_SECS).postgres(database.url());
    recommend_only_records_without_applying(launch).await;
    assert_stored_in(&database).await;
}

/// Checks that in recommend-only mode a scale-up is recorded but not applied.
async fn recommend_only_records_without_applying(launch: Launch) {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = launch.env("RECOMMEND_ONLY", "yes");
    let server = Server::start(dir.path(), &launch);
    assert!(
        server.output().contains("recommend_only=true"),
        "{}",
        server.output()
    );
    let api = server
        .api()
        .sign_up("test@example.com", "testpass123")
        .await;
    api.register_instance(INSTANCE, true).await;

    let load = json!({"instance_id": INSTANCE, "cpu_utilization": 95.0,
        "duration_minutes": 10, "interval_seconds": 30});
    let reply = api.post("/api/metrics/simulate", load).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let path = format!("/api/instances/{INSTANCE}/monitor/start");
    assert_eq!(api.patch(&path).await.status, StatusCode::OK);

    let decision = eventually("a scale_up recommendation", || async {
        scale_ups(&api.decisions(INSTANCE).await)
            .first()
            .map(|d| (*d).clone())
    })
    .await;
    assert_eq!(decision["applied"], false);
    assert_eq!(decision["blocked_by"], "recommend_only");
    assert_eq!(decision["level_after"], 1);
    let instance = api.instance(INSTANCE).await;
    assert_eq!(instance["current_scale_level"], 1);
    assert_eq!(instance["cpu_capacity"], 100.0);
}
