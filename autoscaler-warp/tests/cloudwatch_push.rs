//! Real input: CloudWatch CPU traces of production EC2 instances, pushed through the ingest
//! endpoint with timestamps shifted to end now, and the decisions the server makes on them.
//! The traces come from the Numenta Anomaly Benchmark; `testdata/cloudwatch/README.md` gives
//! the source and license.

mod common;

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, Utc};
use common::{Api, Launch, Server, eventually, testdata};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Datapoints pushed per trace: one day of 5-minute data.
const STRETCH: usize = 288;
/// Of those, the newest ones are pushed one at a time, each evaluated before the next.
const REPLAYED: usize = 12;

/// Reads a `timestamp,value` CSV file of the test data.
fn read_trace(name: &str) -> Vec<(DateTime<Utc>, f64)> {
    let path = testdata().join("cloudwatch").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let (timestamp, value) = line.split_once(',').expect("two columns");
            let naive = NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%d %H:%M:%S")
                .expect("timestamp column");
            (
                naive.and_utc(),
                value.trim().parse().expect("numeric value"),
            )
        })
        .collect()
}

/// Returns the last [`STRETCH`] points of `trace`, shifted so that the last one is at `end`.
fn shifted_stretch(trace: &[(DateTime<Utc>, f64)], end: DateTime<Utc>) -> Vec<Value> {
    let stretch = &trace[trace.len() - STRETCH..];
    let offset = end - stretch[STRETCH - 1].0;
    stretch
        .iter()
        .map(|(at, cpu)| json!({"timestamp": (*at + offset).to_rfc3339(), "cpu_utilization": cpu}))
        .collect()
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    let text = value.as_str().expect("timestamp is a string");
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339 timestamp")
        .with_timezone(&Utc)
}

/// Pushes the history in one batch, then the newest points one by one, waiting for each to be
/// evaluated. Returns the decisions, newest first.
async fn replay(api: &Api, instance_id: &str, samples: &[Value]) -> Vec<Value> {
    let (history, newest) = samples.split_at(samples.len() - REPLAYED);
    let batch = json!({"instance_id": instance_id, "samples": history});
    let reply = api.post("/api/metrics/push", batch.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["stored"], history.len());
    assert_eq!(reply.body["duplicates"], 0);

    // Pushing the same batch again stores nothing new: a client may retry safely.
    let retry = api.post("/api/metrics/push", batch).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body["stored"], 0);
    assert_eq!(retry.body["duplicates"], history.len());

    for sample in newest {
        let single = json!({"instance_id": instance_id, "samples": [sample]});
        let reply = api.post("/api/metrics/push", single).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let pushed_at = timestamp(&sample["timestamp"]);
        eventually("the pushed sample's evaluation", || async {
            let decisions = api.decisions(instance_id).await;
            let latest = decisions.first()?;
            (timestamp(&latest["evidence"]["latest"]["timestamp"]) == pushed_at).then_some(())
        })
        .await;
    }
    api.decisions(instance_id).await
}

#[tokio::test]
async fn traces_decide_as_expected() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 5-minute datapoints need a longer window: 60 minutes contains 12 of them.
    let launch = Launch::ticks(1).arg("--window-secs", "3600");
    let server = Server::start(dir.path(), &launch);
    let api = server.api().sign_up("ops@example.com", "longenough").await;

    let saturated = "i-0825cc20000000000";
    let idle = "i-024ae8d0000000000";
    for instance_id in [saturated, idle] {
        api.register_instance(instance_id, false).await;
        let path = format!("/api/instances/{instance_id}/monitor/start");
        assert_eq!(api.patch(&path).await.status, StatusCode::OK);
    }
    let end = Utc::now().trunc_subsecs(0) - TimeDelta::seconds(1);

    // Saturated: mostly above 90 % CPU, so the sustained-high rule scales it up.
    let trace = read_trace("ec2_cpu_utilization_825cc2.csv");
    let decisions = replay(&api, saturated, &shifted_stretch(&trace, end)).await;
    assert_eq!(decisions.len(), REPLAYED, "{decisions:?}");
    let applied: Vec<_> = decisions.iter().filter(|d| d["applied"] == true).collect();
    assert_eq!(applied.len(), 1, "{decisions:?}");
    let scale_up = applied[0];
    assert_eq!(scale_up["decision"], "scale_up");
    assert_eq!(scale_up["rule"], "sustained_high");
    let reason = scale_up["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("Sustained scale up: CPU > 90% for "),
        "{reason}"
    );
    assert!(reason.contains("of last 60 minutes"), "{reason}");
    assert_eq!(scale_up["memory_usage"], Value::Null);
    assert!(decisions.iter().all(|d| d["decision"] != "scale_down"));
    let instance = api.instance(saturated).await;
    assert_eq!(instance["current_scale_level"], 2);
    assert_eq!(instance["cpu_capacity"], 150.0);

    // Idle: about 0.1 % CPU with tiny noise and no memory metric, so nothing scales it up.
    let trace = read_trace("ec2_cpu_utilization_24ae8d.csv");
    let decisions = replay(&api, idle, &shifted_stretch(&trace, end)).await;
    assert_eq!(decisions.len(), REPLAYED, "{decisions:?}");
    for decision in &decisions {
        assert_ne!(decision["decision"], "scale_up", "{decision:?}");
        assert_eq!(decision["applied"], false, "{decision:?}");
    }
    let iqr_runs = decisions.iter().filter(|d| d["rule"] == "iqr").count();
    assert!(iqr_runs > 0, "the IQR rule never ran: {decisions:?}");
    let instance = api.instance(idle).await;
    assert_eq!(instance["current_scale_level"], 1);
    assert_eq!(instance["cpu_capacity"], 100.0);

    let stored = api.metrics(idle).await;
    assert_eq!(stored.len(), STRETCH);
    assert_eq!(timestamp_naive(&stored[0]["timestamp"]), end.naive_utc());
}

/// Parses the API's `2026-01-22T05:16:25.123456` format.
fn timestamp_naive(value: &Value) -> NaiveDateTime {
    let text = value.as_str().expect("timestamp is a string");
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6f").expect("API timestamp format")
}
