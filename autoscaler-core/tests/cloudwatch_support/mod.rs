//! Shared by the CloudWatch tests of this crate and of the server: a moto server (a
//! CloudWatch-compatible server from PyPI, `moto[server]`) on a loopback port, the traces of
//! `testdata/cloudwatch`, and loading them into moto with `PutMetricData`.
//!
//! `.ci/run` installs moto into the workspace's `.venv`; `MOTO_SERVER` names another
//! `moto_server` binary.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use autoscaler_core::Decision;
use autoscaler_core::engine::Fences;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

pub const REGION: &str = "us-east-1";

/// The traces hold one datapoint every 5 minutes, so the collector reads 5-minute periods.
pub const PERIOD: i64 = 300;

// ---------------------------------------------------------------------------------------------
// moto harness

/// A `moto_server` child process on a loopback port, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto on a free loopback port.
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("binding a free loopback port")
            .port();
        Moto::start_on(port, &[])
    }

    /// Starts moto on `port` with extra environment variables, and waits until it accepts
    /// connections.
    pub fn start_on(port: u16, env: &[(&str, &str)]) -> Moto {
        let binary = moto_server_binary();
        let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-{port}.log"));
        let log = File::create(&log_path).expect("creating the moto log file");
        let stderr = log.try_clone().expect("cloning the moto log file");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {} failed: {error}", binary.display()));
        let mut moto = Moto { child, port };
        moto.wait_until_ready(&log_path);
        moto
    }

    fn wait_until_ready(&mut self, log_path: &Path) {
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!("moto_server exited with {status} before accepting connections:\n{log}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not accept connections on port {} within 30 s",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server; its data is lost.
    pub fn stop(mut self) -> u16 {
        self.kill();
        self.port
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Returns the `moto_server` binary from `MOTO_SERVER` or the workspace's `.venv`.
pub fn moto_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    assert!(
        path.exists(),
        "moto_server not found at {}; install it with \
         `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'` in the workspace root, \
         or set MOTO_SERVER to its path",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------------
// SDK configuration and data loading

/// Returns an SDK configuration with dummy static credentials, so that no credential source of the
/// machine (environment, files, instance metadata) is consulted.
pub fn sdk_config() -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", None, None, "tests");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

/// Creates a CloudWatch client of `region` that writes to moto.
pub fn writer(moto: &Moto, region: &str) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::config::Builder::from(&sdk_config())
        .region(Region::new(region.to_owned()))
        .endpoint_url(moto.url())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

/// One metric of one instance: namespace, metric name, instance id.
#[derive(Clone, Copy)]
pub struct Series<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub instance_id: &'a str,
}

pub fn cpu(instance_id: &str) -> Series<'_> {
    Series {
        namespace: "AWS/EC2",
        name: "CPUUtilization",
        instance_id,
    }
}

pub fn network_in(instance_id: &str) -> Series<'_> {
    Series {
        namespace: "AWS/EC2",
        name: "NetworkIn",
        instance_id,
    }
}

pub fn memory(instance_id: &str) -> Series<'_> {
    Series {
        namespace: "CWAgent",
        name: "mem_used_percent",
        instance_id,
    }
}

/// Writes `points` of `series` with PutMetricData, in requests of at most 500 datapoints.
pub async fn put(client: &aws_sdk_cloudwatch::Client, series: Series<'_>, points: &[Point]) {
    for chunk in points.chunks(500) {
        let data: Vec<MetricDatum> = chunk
            .iter()
            .map(|point| {
                MetricDatum::builder()
                    .metric_name(series.name)
                    .dimensions(
                        Dimension::builder()
                            .name("InstanceId")
                            .value(series.instance_id)
                            .build(),
                    )
                    .timestamp(AwsDateTime::from_secs(point.at.timestamp()))
                    .value(point.value)
                    .build()
            })
            .collect();
        client
            .put_metric_data()
            .namespace(series.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .expect("PutMetricData to moto");
    }
}

// ---------------------------------------------------------------------------------------------
// Traces

/// One datapoint of a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// Reads rows `rows` (0-based, header excluded) of a trace in `testdata/cloudwatch`.
pub fn trace(file: &str, rows: std::ops::Range<usize>) -> Vec<Point> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/cloudwatch")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let points: Vec<Point> = text
        .lines()
        .skip(1)
        .map(|line| {
            let (at, value) = line.split_once(',').expect("two columns");
            let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S")
                .expect("timestamp")
                .and_utc();
            Point {
                at,
                value: value.parse().expect("value"),
            }
        })
        .collect();
    points[rows].to_vec()
}

/// Shifts `points` so that the last one is at `last`; spacing and gaps stay as recorded.
pub fn shift(points: &[Point], last: DateTime<Utc>) -> Vec<Point> {
    let offset = last - points.last().expect("a non-empty stretch").at;
    points
        .iter()
        .map(|point| Point {
            at: point.at + offset,
            value: point.value,
        })
        .collect()
}

/// Returns a time on a period boundary and the start of the last period that has ended by
/// then, where shifted traces end.
pub fn now_and_last_period() -> (DateTime<Utc>, DateTime<Utc>) {
    let secs = Utc::now().timestamp();
    let now = DateTime::from_timestamp(secs - secs.rem_euclid(PERIOD), 0).expect("valid time");
    (now, now - TimeDelta::seconds(PERIOD))
}

// ---------------------------------------------------------------------------------------------
// Expected decisions

/// Computes the IQR rule on the trace values: fences of the baseline (every value but the
/// last) and the CPU vote of the last value, with the default 5-point floor.
pub fn expected_cpu_vote(values: &[f64]) -> (Fences, Decision) {
    let (latest, baseline) = values.split_last().expect("values in the window");
    let mut sorted = baseline.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let (q1, median, q3) = (sorted[n / 4], sorted[n / 2], sorted[3 * n / 4]);
    let spread = (q3 - q1).max(5.0);
    let fences = Fences {
        q1,
        median,
        q3,
        iqr: q3 - q1,
        floor: 5.0,
        lower: q1 - 1.5 * spread,
        upper: q3 + 1.5 * spread,
    };
    let decision = if *latest > fences.upper {
        Decision::ScaleUp
    } else if *latest < fences.lower {
        Decision::ScaleDown
    } else {
        Decision::NoAction
    };
    (fences, decision)
}
