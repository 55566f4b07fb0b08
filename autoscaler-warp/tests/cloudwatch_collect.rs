//! EC2 instances collected through the real AWS SDK: the server reads CloudWatch metrics from
//! moto, a CloudWatch-compatible server on a free loopback port, and decides on them.
//!
//! The real-input tests load stretches of CloudWatch traces (`testdata/cloudwatch`) into moto
//! with their timestamps shifted to end at the last 5-minute period that has ended, and run
//! the server with 5-minute periods and a 60-minute window. A stretch spans at most 10
//! periods, so the window and the lookback still contain all of it when the next period ends
//! during the test.

#[path = "../../autoscaler-core/tests/cloudwatch_support/mod.rs"]
mod cloudwatch_support;
mod common;

use std::collections::HashMap;

use autoscaler_core::Decision;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use cloudwatch_support::{
    Moto, PERIOD, Point, REGION, cpu, expected_cpu_vote, network_in, now_and_last_period, put,
    shift, trace, writer,
};
use common::{Api, Launch, Server, eventually};
use reqwest::StatusCode;
use serde_json::Value;

const INSTANCE: &str = "i-0123456789abcdef0";

/// Writes one datapoint per minute of `metric` for the ten minutes that ended last.
async fn put_last_ten_minutes(moto: &Moto, metric: &str, value: f64, now: DateTime<Utc>) {
    let minute = now.timestamp() - now.timestamp().rem_euclid(60);
    let points: Vec<Point> = (1..=10)
        .map(|minutes_back| Point {
            at: DateTime::from_timestamp(minute - 60 * minutes_back, 0).expect("valid time"),
            value,
        })
        .collect();
    let series = cloudwatch_support::Series {
        name: metric,
        ..cpu(INSTANCE)
    };
    put(&writer(moto, REGION), series, &points).await;
}

/// Signs up, registers [`INSTANCE`] as an EC2 instance and starts monitoring it.
async fn monitor_ec2_instance(server: &Server) -> Api {
    let api = server.api().sign_up("ops@example.com", "longenough").await;
    monitor(&api, INSTANCE).await;
    api
}

/// Registers `instance_id` as an EC2 instance in [`REGION`] and starts monitoring it.
async fn monitor(api: &Api, instance_id: &str) {
    api.register_instance(instance_id, false).await;
    let started = api
        .patch(&format!("/api/instances/{instance_id}/monitor/start"))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
}

/// Returns the server settings for the traces: 5-minute periods, a 60-minute window, and
/// CloudWatch at `moto`.
fn trace_launch(moto: &Moto) -> Launch {
    Launch::ticks(1)
        .arg("--window-secs", "3600")
        .arg("--cloudwatch-period-secs", &PERIOD.to_string())
        .env("AWS_ENDPOINT_URL", &moto.url())
}

/// Starts a server on the traces' settings and signs up a user.
async fn trace_server(dir: &std::path::Path, moto: &Moto) -> (Server, Api) {
    let server = Server::start(dir, &trace_launch(moto));
    let api = server.api().sign_up("ops@example.com", "longenough").await;
    (server, api)
}

/// Parses the API's sample timestamp, for example `2026-01-22T05:15:00.000000`, as UTC.
fn sample_time(sample: &Value) -> DateTime<Utc> {
    let text = sample["timestamp"].as_str().expect("timestamp is a string");
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6f")
        .unwrap_or_else(|error| panic!("sample timestamp {text}: {error}"))
        .and_utc()
}

/// Parses the RFC 3339 timestamp of the latest sample a decision evaluated.
fn evaluated_time(decision: &Value) -> DateTime<Utc> {
    let text = decision["evidence"]["latest"]["timestamp"]
        .as_str()
        .expect("evidence.latest.timestamp is a string");
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("evidence timestamp {text}: {error}"))
        .with_timezone(&Utc)
}

/// Waits for the decision that evaluated the sample at `latest`, and returns it.
async fn decision_on(api: &Api, instance_id: &str, latest: DateTime<Utc>) -> Value {
    eventually(
        &format!("a decision of {instance_id} on {latest}"),
        || async {
            let decisions = api.decisions(instance_id).await;
            decisions.into_iter().find(|d| evaluated_time(d) == latest)
        },
    )
    .await
}

/// Checks that `stored` contains one sample per trace point, at the point's timestamp, with the
/// trace's CPU and, when given, network-in values. Signals that moto never received must be
/// null: an absent signal is never stored as 0.
fn assert_samples_match(stored: &[Value], cpu_points: &[Point], network_points: Option<&[Point]>) {
    assert_eq!(
        stored.len(),
        cpu_points.len(),
        "one sample per datapoint: {stored:?}"
    );
    let by_time: HashMap<DateTime<Utc>, &Value> = stored
        .iter()
        .map(|sample| (sample_time(sample), sample))
        .collect();
    for (index, point) in cpu_points.iter().enumerate() {
        let sample = by_time
            .get(&point.at)
            .unwrap_or_else(|| panic!("no sample at {}: {stored:?}", point.at));
        assert_eq!(
            sample["cpu_utilization"], point.value,
            "CPU at {}",
            point.at
        );
        let network = network_points.map(|points| points[index]);
        match network {
            Some(network) => {
                assert_eq!(network.at, point.at, "the traces share timestamps");
                assert_eq!(
                    sample["network_in"], network.value,
                    "network in at {}",
                    point.at
                );
            }
            None => assert_eq!(
                sample["network_in"],
                Value::Null,
                "network in at {}",
                point.at
            ),
        }
        assert_eq!(
            sample["network_out"],
            Value::Null,
            "network out at {}",
            point.at
        );
        assert_eq!(
            sample["memory_usage"],
            Value::Null,
            "memory at {}",
            point.at
        );
    }
}

/// Loads rows `rows` of the CPU trace `file` for `instance_id` into moto, shifted to end at
/// `last`, and returns them. The stretch must fit the server's window.
async fn load_cpu(
    moto: &Moto,
    instance_id: &str,
    file: &str,
    rows: std::ops::Range<usize>,
    last: DateTime<Utc>,
) -> Vec<Point> {
    let points = shift(&trace(file, rows), last);
    assert_fits_window(&points, last);
    put(&writer(moto, REGION), cpu(instance_id), &points).await;
    points
}

/// Checks that `points` lie in the 10 periods up to `last`, which the server's 60-minute
/// window contains until two more periods have ended.
fn assert_fits_window(points: &[Point], last: DateTime<Utc>) {
    let oldest = last - TimeDelta::seconds(9 * PERIOD);
    assert!(
        points
            .iter()
            .all(|point| point.at >= oldest && point.at <= last),
        "stretch does not fit the window: {points:?}"
    );
}

#[tokio::test]
async fn ec2_instance_collected_from_cloudwatch() {
    let moto = Moto::start();
    let now = Utc::now();
    put_last_ten_minutes(&moto, "CPUUtilization", 95.0, now).await;
    put_last_ten_minutes(&moto, "NetworkIn", 2_000_000.0, now).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::ticks(1).env("AWS_ENDPOINT_URL", &moto.url());
    let server = Server::start(dir.path(), &launch);
    let api = monitor_ec2_instance(&server).await;

    // The collector returns the datapoints of ended minutes within the lookback (window plus
    // one period), one sample per minute.
    let metrics = eventually("samples read from CloudWatch", || async {
        let metrics = api.metrics(INSTANCE).await;
        (metrics.len() >= 5).then_some(metrics)
    })
    .await;
    for metric in &metrics {
        assert_eq!(metric["cpu_utilization"], 95.0, "{metric:?}");
        assert_eq!(metric["network_in"], 2_000_000.0, "{metric:?}");
        assert_eq!(metric["memory_usage"], Value::Null, "{metric:?}");
        assert_eq!(metric["network_out"], Value::Null, "{metric:?}");
        let text = metric["timestamp"].as_str().expect("timestamp");
        assert!(
            text.ends_with(":00.000000"),
            "not a minute boundary: {text}"
        );
    }
    let instance = api.instance(INSTANCE).await;
    assert_eq!(instance["last_collection_error"], Value::Null);

    let decision = eventually("a scale_up from CloudWatch samples", || async {
        let decisions = api.decisions(INSTANCE).await;
        decisions
            .into_iter()
            .find(|d| d["decision"] == "scale_up" && d["applied"] == true)
    })
    .await;
    assert_eq!(decision["rule"], "sustained_high");
    let instance = api.instance(INSTANCE).await;
    assert_eq!(instance["current_scale_level"], 2);
    assert!(server.stop().success());
}

#[tokio::test]
async fn collection_failure_is_reported() {
    // The harness points the SDK at a loopback port where nothing listens.
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &Launch::ticks(1));
    let api = monitor_ec2_instance(&server).await;

    let error = eventually("a recorded collection error", || async {
        let instance = api.instance(INSTANCE).await;
        let error = &instance["last_collection_error"];
        (!error.is_null()).then(|| error.clone())
    })
    .await;
    let message = error["message"].as_str().expect("message");
    assert!(message.contains(INSTANCE), "{message}");
    assert!(message.contains(REGION), "{message}");
    let at = error["at"].as_str().expect("time of the failure");
    assert!(chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.6f").is_ok());
    assert!(
        api.metrics(INSTANCE).await.is_empty(),
        "nothing is fabricated"
    );

    assert!(server.stop().success());
}

// ---------------------------------------------------------------------------------------------
// Real traces

#[tokio::test]
async fn saturated_trace_stored_and_scaled_up() {
    let moto = Moto::start();
    let (_, last) = now_and_last_period();
    // Rows 30..39 are above 90 % CPU and include a 10-minute gap, which must stay a gap. The
    // network trace was recorded on the same timestamps.
    let id = "i-0825cc2000000000a";
    let cpu_points = load_cpu(&moto, id, "ec2_cpu_utilization_825cc2.csv", 30..39, last).await;
    let network_points = shift(&trace("ec2_network_in_257a54.csv", 30..39), last);
    put(&writer(&moto, REGION), network_in(id), &network_points).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, api) = trace_server(dir.path(), &moto).await;
    monitor(&api, id).await;

    let decision = decision_on(&api, id, last).await;
    assert_samples_match(&api.metrics(id).await, &cpu_points, Some(&network_points));
    assert_eq!(decision["decision"], "scale_up", "{decision:?}");
    assert_eq!(decision["rule"], "sustained_high", "{decision:?}");
    assert_eq!(decision["applied"], true, "{decision:?}");
    let reason = decision["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("Sustained scale up: CPU > 90% for "),
        "{reason}"
    );
    assert_eq!(decision["memory_usage"], Value::Null);
    let instance = api.instance(id).await;
    assert_eq!(instance["current_scale_level"], 2);
    assert_eq!(instance["last_collection_error"], Value::Null);
    assert!(server.stop().success());
}

#[tokio::test]
async fn idle_trace_never_scales_up() {
    let moto = Moto::start();
    let (_, last) = now_and_last_period();
    let id = "i-024ae8d0000000000";
    let points = load_cpu(&moto, id, "ec2_cpu_utilization_24ae8d.csv", 0..10, last).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, api) = trace_server(dir.path(), &moto).await;
    monitor(&api, id).await;

    let decision = decision_on(&api, id, last).await;
    assert_samples_match(&api.metrics(id).await, &points, None);
    // About 0.1 % CPU and no memory metric: the sustained-low rule needs memory, and the CPU
    // noise stays within the fences.
    assert_eq!(decision["rule"], "iqr", "{decision:?}");
    assert_eq!(decision["decision"], "no_action", "{decision:?}");
    for decision in api.decisions(id).await {
        assert_ne!(decision["decision"], "scale_up", "{decision:?}");
        assert_eq!(decision["applied"], false, "{decision:?}");
    }
    assert_eq!(api.instance(id).await["current_scale_level"], 1);
    assert!(server.stop().success());
}

#[tokio::test]
async fn mid_range_traces_decided_by_iqr() {
    let moto = Moto::start();
    let (_, last) = now_and_last_period();
    // Rows 2961..2971 end with a burst to 68 % after a baseline of 35-51 %; rows 14..24 stay
    // within their fences.
    let file = "ec2_cpu_utilization_5f5533.csv";
    let burst = "i-5f553300000000001";
    let calm = "i-5f553300000000002";
    let cases = [
        (burst, 2961..2971, "scale_up", Decision::ScaleUp),
        (calm, 14..24, "no_action", Decision::NoAction),
    ];
    let mut loaded = Vec::new();
    for (id, rows, _, _) in &cases {
        loaded.push(load_cpu(&moto, id, file, rows.clone(), last).await);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, api) = trace_server(dir.path(), &moto).await;
    for (id, _, _, _) in &cases {
        monitor(&api, id).await;
    }

    for ((id, _, name, expected), points) in cases.iter().zip(&loaded) {
        let values: Vec<f64> = points.iter().map(|point| point.value).collect();
        let (fences, vote) = expected_cpu_vote(&values);
        assert_eq!(vote, *expected, "the stretch of {id}");

        let decision = decision_on(&api, id, last).await;
        assert_samples_match(&api.metrics(id).await, points, None);
        assert_eq!(decision["rule"], "iqr", "{decision:?}");
        assert_eq!(decision["decision"], *name, "{decision:?}");
        let signals = decision["evidence"]["iqr"]["signals"]
            .as_array()
            .unwrap_or_else(|| panic!("IQR evidence of {id}: {decision:?}"));
        let cpu_evidence = signals
            .iter()
            .find(|signal| signal["signal"] == "cpu")
            .unwrap_or_else(|| panic!("CPU evidence of {id}: {signals:?}"));
        let stored_fences = serde_json::from_value(cpu_evidence["fences"].clone())
            .unwrap_or_else(|error| panic!("fences of {id}: {error}"));
        assert_eq!(fences, stored_fences, "{id}");
    }
    assert_eq!(api.instance(burst).await["current_scale_level"], 2);
    assert_eq!(api.instance(calm).await["current_scale_level"], 1);
    assert!(server.stop().success());
}

// ---------------------------------------------------------------------------------------------
// Missing data and outages

#[tokio::test]
async fn unknown_instance_gets_nothing() {
    let moto = Moto::start();
    let (_, last) = now_and_last_period();
    let known = "i-0000000000000abcd";
    let unknown = "i-0000000000000dead";
    load_cpu(&moto, known, "ec2_cpu_utilization_5f5533.csv", 0..3, last).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, api) = trace_server(dir.path(), &moto).await;
    // Monitored first, so every collection that reads the known instance reads it too.
    monitor(&api, unknown).await;
    monitor(&api, known).await;

    decision_on(&api, known, last).await;
    eventually(
        "a warning about the instance without datapoints",
        || async {
            let output = server.output();
            let warned = output
                .lines()
                .any(|line| line.contains("no CloudWatch datapoints") && line.contains(unknown));
            warned.then_some(())
        },
    )
    .await;
    assert!(
        api.metrics(unknown).await.is_empty(),
        "no sample is fabricated"
    );
    assert!(
        api.decisions(unknown).await.is_empty(),
        "no decision without data"
    );
    let instance = api.instance(unknown).await;
    assert_eq!(
        instance["last_collection_error"],
        Value::Null,
        "no data is not an error"
    );
    assert_eq!(instance["current_scale_level"], 1);
    assert!(server.stop().success());
}

#[tokio::test]
async fn cloudwatch_outage_reported_then_recovered() {
    let moto = Moto::start();
    let (_, last) = now_and_last_period();
    // The stretch ends one period before `last`, so that the period at `last` is still to be
    // read when moto comes back.
    let id = "i-00000000000000044";
    let file = "ec2_cpu_utilization_5f5533.csv";
    let before = last - TimeDelta::seconds(PERIOD);
    let points = load_cpu(&moto, id, file, 0..5, before).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, api) = trace_server(dir.path(), &moto).await;
    monitor(&api, id).await;
    decision_on(&api, id, before).await;
    assert_samples_match(&api.metrics(id).await, &points, None);

    let port = moto.stop();
    let error = eventually("a recorded collection error", || async {
        let error = api.instance(id).await["last_collection_error"].clone();
        (!error.is_null()).then_some(error)
    })
    .await;
    let message = error["message"].as_str().expect("message");
    assert!(message.contains(id), "{message}");
    assert!(
        message.contains("GetMetricData in us-east-1 failed"),
        "{message}"
    );
    assert!(error["at"].is_string(), "{error:?}");

    // The server keeps serving while CloudWatch is down.
    let health = api.get("/api").await;
    assert_eq!(health.status, StatusCode::OK, "{:?}", health.body);
    assert_eq!(api.metrics(id).await.len(), points.len());
    assert_eq!(api.decisions(id).await.len(), 1);

    // moto comes back on the same port, empty, and gets the datapoint of the next period.
    let moto = Moto::start_on(port, &[]);
    let next = Point {
        at: last,
        value: trace(file, 5..6)[0].value,
    };
    put(&writer(&moto, REGION), cpu(id), &[next]).await;
    let recovered = eventually("collection after the outage", || async {
        let instance = api.instance(id).await;
        let metrics = api.metrics(id).await;
        let collected = metrics.iter().any(|sample| sample_time(sample) == last);
        (collected && instance["last_collection_error"].is_null()).then_some(metrics)
    })
    .await;
    let mut expected = points.clone();
    expected.push(next);
    assert_samples_match(&recovered, &expected, None);
    decision_on(&api, id, last).await;
    assert!(server.stop().success());
}
