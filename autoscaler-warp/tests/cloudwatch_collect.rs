//! EC2 instances collected through the real AWS SDK: the server reads CloudWatch metrics from
//! moto, a CloudWatch-compatible server on a free loopback port, and decides on them.
//!
//! moto comes from PyPI (`moto[server]`); `.ci/run` installs it into the workspace's `.venv`,
//! and `MOTO_SERVER` names another `moto_server` binary.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use chrono::{DateTime, Utc};
use common::{Api, Launch, Server, eventually};
use reqwest::StatusCode;
use serde_json::Value;

const REGION: &str = "us-east-1";
const INSTANCE: &str = "i-0123456789abcdef0";

/// A `moto_server` process on a loopback port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let binary = moto_binary();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {} failed: {error}", binary.display()));
        let mut moto = Moto { child, port };
        for _ in 0..300 {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status} before accepting connections");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not accept connections on port {port} within 30 s");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    assert!(
        path.exists(),
        "moto_server not found at {}; install it with `python3 -m venv .venv && \
         .venv/bin/pip install 'moto[server]'` in the workspace root, or set MOTO_SERVER",
        path.display()
    );
    path
}

/// Returns a CloudWatch client with dummy credentials that writes to moto.
fn writer(moto: &Moto) -> aws_sdk_cloudwatch::Client {
    let credentials = Credentials::new("test", "test", None, None, "tests");
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let config = aws_sdk_cloudwatch::config::Builder::from(&sdk)
        .endpoint_url(moto.url())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

/// Writes one datapoint per minute of `metric` for the ten minutes that ended last.
async fn put_last_ten_minutes(
    client: &aws_sdk_cloudwatch::Client,
    metric: &str,
    value: f64,
    now: DateTime<Utc>,
) {
    let minute = now.timestamp() - now.timestamp().rem_euclid(60);
    let data: Vec<MetricDatum> = (1..=10)
        .map(|minutes_back| {
            MetricDatum::builder()
                .metric_name(metric)
                .dimensions(
                    Dimension::builder()
                        .name("InstanceId")
                        .value(INSTANCE)
                        .build(),
                )
                .timestamp(AwsDateTime::from_secs(minute - 60 * minutes_back))
                .value(value)
                .build()
        })
        .collect();
    client
        .put_metric_data()
        .namespace("AWS/EC2")
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData to moto");
}

/// Signs up, registers [`INSTANCE`] as an EC2 instance and starts monitoring it.
async fn monitor_ec2_instance(server: &Server) -> Api {
    let api = server.api().sign_up("ops@example.com", "longenough").await;
    api.register_instance(INSTANCE, false).await;
    let started = api
        .patch(&format!("/api/instances/{INSTANCE}/monitor/start"))
        .await;
    assert_eq!(started.status, StatusCode::OK);
    api
}

#[tokio::test]
async fn ec2_instance_collected_from_cloudwatch() {
    let moto = Moto::start();
    let client = writer(&moto);
    let now = Utc::now();
    put_last_ten_minutes(&client, "CPUUtilization", 95.0, now).await;
    put_last_ten_minutes(&client, "NetworkIn", 2_000_000.0, now).await;

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
