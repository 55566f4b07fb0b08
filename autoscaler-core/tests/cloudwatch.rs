//! The CloudWatch collector through the real AWS SDK against moto, a CloudWatch-compatible
//! server started on a free loopback port, with dummy credentials.
//!
//! The input is stretches of real CloudWatch traces (`testdata/cloudwatch`), loaded with
//! `PutMetricData` with their timestamps shifted to end just before the test's `now`. moto
//! comes from PyPI (`moto[server]`); `.ci/run` installs it into `.venv`.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use autoscaler_core::cloudwatch::{CloudWatchCollector, CloudWatchConfig};
use autoscaler_core::engine::Fences;
use autoscaler_core::store::Instance;
use autoscaler_core::{
    CollectError, Collected, Collector, Decision, Evaluation, Policy, Rule, Sample, ScaleState,
    Signal, WindowSample, evaluate,
};
use aws_config::profile::ProfileFileCredentialsProvider;
// aws-config re-exports the profile file types only under these deprecated names; the new
// names live in aws-runtime, which this crate does not depend on.
#[expect(deprecated)]
use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use uuid::Uuid;

const REGION: &str = "us-east-1";

/// The traces hold one datapoint every 5 minutes, so the collector reads 5-minute periods.
const PERIOD: i64 = 300;

/// A 60-minute decision window contains 11 complete periods of the traces.
const WINDOW: Duration = Duration::from_secs(3600);

/// Bound on one collection, so that a hang fails the test instead of stalling it.
const COLLECT_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// moto harness

/// A `moto_server` child process on a loopback port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto on a free loopback port.
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("binding a free loopback port")
            .port();
        Moto::start_on(port, &[])
    }

    /// Starts moto on `port` with extra environment variables, and waits until it accepts
    /// connections.
    fn start_on(port: u16, env: &[(&str, &str)]) -> Moto {
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server; its data is lost.
    fn stop(mut self) -> u16 {
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
fn moto_server_binary() -> PathBuf {
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
fn sdk_config() -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", None, None, "tests");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

fn collector_config(moto: &Moto) -> CloudWatchConfig {
    CloudWatchConfig {
        period: Duration::from_secs(PERIOD as u64),
        lookback: Duration::from_secs(3 * 3600),
        endpoint_url: Some(moto.url()),
        ..CloudWatchConfig::for_window(WINDOW)
    }
}

fn collector(moto: &Moto) -> CloudWatchCollector {
    CloudWatchCollector::from_sdk_config(collector_config(moto), WINDOW, &sdk_config())
        .expect("valid collector settings")
}

/// Creates a CloudWatch client of `region` that writes to moto.
fn writer(moto: &Moto, region: &str) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::config::Builder::from(&sdk_config())
        .region(Region::new(region.to_owned()))
        .endpoint_url(moto.url())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

/// One metric of one instance: namespace, metric name, instance id.
#[derive(Clone, Copy)]
struct Series<'a> {
    namespace: &'a str,
    name: &'a str,
    instance_id: &'a str,
}

fn cpu(instance_id: &str) -> Series<'_> {
    Series {
        namespace: "AWS/EC2",
        name: "CPUUtilization",
        instance_id,
    }
}

fn network_in(instance_id: &str) -> Series<'_> {
    Series {
        namespace: "AWS/EC2",
        name: "NetworkIn",
        instance_id,
    }
}

fn memory(instance_id: &str) -> Series<'_> {
    Series {
        namespace: "CWAgent",
        name: "mem_used_percent",
        instance_id,
    }
}

/// Writes `points` of `series` with PutMetricData, in requests of at most 500 datapoints.
async fn put(client: &aws_sdk_cloudwatch::Client, series: Series<'_>, points: &[Point]) {
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
struct Point {
    at: DateTime<Utc>,
    value: f64,
}

/// Reads rows `rows` (0-based, header excluded) of a trace in `testdata/cloudwatch`.
fn trace(file: &str, rows: std::ops::Range<usize>) -> Vec<Point> {
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
fn shift(points: &[Point], last: DateTime<Utc>) -> Vec<Point> {
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
fn now_and_last_period() -> (DateTime<Utc>, DateTime<Utc>) {
    let secs = Utc::now().timestamp();
    let now = DateTime::from_timestamp(secs - secs.rem_euclid(PERIOD), 0).expect("valid time");
    (now, now - TimeDelta::seconds(PERIOD))
}

// ---------------------------------------------------------------------------------------------
// Collection and evaluation helpers

fn instance(instance_id: &str, region: &str) -> Instance {
    Instance {
        id: Uuid::new_v4(),
        owner_id: Uuid::nil(),
        instance_id: instance_id.to_owned(),
        instance_type: "m5.large".to_owned(),
        region: region.to_owned(),
        is_mock: false,
        is_monitoring: true,
        scale: ScaleState::initial(),
        created_at: Utc::now(),
        last_collection_error: None,
    }
}

async fn collect(
    collector: &CloudWatchCollector,
    instances: &[Instance],
    now: DateTime<Utc>,
) -> Vec<Collected> {
    tokio::time::timeout(COLLECT_LIMIT, collector.collect(instances, now))
        .await
        .expect("collection finished within its bound")
}

/// Collects `instance` alone and returns its samples, failing on a collection error.
async fn collect_one(
    collector: &CloudWatchCollector,
    instance: &Instance,
    now: DateTime<Utc>,
) -> Vec<Sample> {
    let collected = collect(collector, std::slice::from_ref(instance), now).await;
    samples_of(&collected, instance)
}

/// Returns the samples collected for `instance`, failing on a collection error.
fn samples_of(collected: &[Collected], instance: &Instance) -> Vec<Sample> {
    let entry = collected
        .iter()
        .find(|c| c.instance == instance.id)
        .unwrap_or_else(|| panic!("no result for {}", instance.instance_id));
    match &entry.result {
        Ok(samples) => samples.clone(),
        Err(error) => panic!("collecting {} failed: {error}", instance.instance_id),
    }
}

/// Returns the collection error of `instance`.
fn error_of<'a>(collected: &'a [Collected], instance: &Instance) -> &'a CollectError {
    let entry = collected
        .iter()
        .find(|c| c.instance == instance.id)
        .unwrap_or_else(|| panic!("no result for {}", instance.instance_id));
    match &entry.result {
        Ok(samples) => panic!("expected an error, got {} samples", samples.len()),
        Err(error) => error,
    }
}

fn assert_cpu_matches(samples: &[Sample], expected: &[Point]) {
    assert_eq!(samples.len(), expected.len(), "one sample per datapoint");
    for (sample, point) in samples.iter().zip(expected) {
        assert_eq!(sample.timestamp(), point.at);
        assert_eq!(sample.cpu_utilization(), point.value, "CPU at {}", point.at);
    }
}

fn policy() -> Policy {
    Policy {
        window: WINDOW,
        ..Policy::default()
    }
}

fn evaluate_samples(samples: &[Sample], now: DateTime<Utc>) -> Evaluation {
    let window: Vec<WindowSample> = samples.iter().copied().map(WindowSample::from).collect();
    evaluate(&policy(), &window, now, &ScaleState::initial())
}

/// Returns the trace values in the evaluation window `(now - WINDOW, now]`, oldest first.
fn in_window(points: &[Point], now: DateTime<Utc>) -> Vec<f64> {
    let start = now - TimeDelta::from_std(WINDOW).expect("window fits");
    points
        .iter()
        .filter(|point| point.at > start && point.at <= now)
        .map(|point| point.value)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Real traces

#[tokio::test]
async fn saturated_trace_round_trips_and_scales_up() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    // Rows 15..39 of the saturated trace include a 10-minute gap; the network trace was
    // recorded on the same timestamps.
    let cpu_points = shift(&trace("ec2_cpu_utilization_825cc2.csv", 15..39), last);
    let network_points = shift(&trace("ec2_network_in_257a54.csv", 15..39), last);
    let timestamps = |points: &[Point]| points.iter().map(|p| p.at).collect::<Vec<_>>();
    assert_eq!(timestamps(&cpu_points), timestamps(&network_points));

    let id = "i-0825cc2000000000a";
    let client = writer(&moto, REGION);
    put(&client, cpu(id), &cpu_points).await;
    put(&client, network_in(id), &network_points).await;

    let collector = collector(&moto);
    let saturated = instance(id, REGION);
    let samples = collect_one(&collector, &saturated, now).await;

    assert_cpu_matches(&samples, &cpu_points);
    for (sample, point) in samples.iter().zip(&network_points) {
        assert_eq!(
            sample.network_in(),
            Some(point.value),
            "network in at {}",
            point.at
        );
        assert_eq!(
            sample.network_out(),
            None,
            "network out was never published"
        );
        assert_eq!(sample.memory_usage(), None, "memory was never published");
    }

    let window_values = in_window(&cpu_points, now);
    let above = window_values.iter().filter(|v| **v > 90.0).count();
    assert!(
        above * 5 >= window_values.len() * 4,
        "stretch must be saturated"
    );
    let evaluation = evaluate_samples(&samples, now);
    assert_eq!(evaluation.decision, Decision::ScaleUp);
    assert_eq!(evaluation.rule, Rule::SustainedHigh);
    assert_eq!(evaluation.evidence.window_samples, window_values.len());
}

#[tokio::test]
async fn idle_trace_does_not_scale_up() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    let points = shift(&trace("ec2_cpu_utilization_24ae8d.csv", 0..24), last);
    let id = "i-24ae8d00";
    put(&writer(&moto, REGION), cpu(id), &points).await;

    let collector = collector(&moto);
    let idle = instance(id, REGION);
    let samples = collect_one(&collector, &idle, now).await;

    assert_cpu_matches(&samples, &points);
    let evaluation = evaluate_samples(&samples, now);
    assert_ne!(evaluation.decision, Decision::ScaleUp);
    // Without memory the sustained-low rule cannot match, and the CPU noise stays within
    // the fences.
    assert_eq!(evaluation.decision, Decision::NoAction);
    assert_eq!(evaluation.rule, Rule::Iqr);
}

/// Computes the IQR rule on the trace values: fences of the baseline (every value but the
/// last) and the CPU vote of the last value, with the default 5-point floor.
fn expected_cpu_vote(values: &[f64]) -> (Fences, Decision) {
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

#[tokio::test]
async fn mid_range_trace_decides_by_iqr() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    // Rows 2947..2971 end with a burst to 68 % after a baseline of 35-51 %; rows 0..24 stay
    // within their fences.
    let stretches = [
        ("i-5f553300000000001", 2947..2971, Decision::ScaleUp),
        ("i-5f553300000000002", 0..24, Decision::NoAction),
    ];
    let client = writer(&moto, REGION);
    let mut cases = Vec::new();
    for (id, rows, decision) in stretches {
        let points = shift(&trace("ec2_cpu_utilization_5f5533.csv", rows), last);
        put(&client, cpu(id), &points).await;
        cases.push((instance(id, REGION), points, decision));
    }

    let collector = collector(&moto);
    let instances: Vec<Instance> = cases.iter().map(|(i, _, _)| i.clone()).collect();
    let collected = collect(&collector, &instances, now).await;

    for (instance, points, decision) in &cases {
        let samples = samples_of(&collected, instance);
        assert_cpu_matches(&samples, points);

        let (fences, expected) = expected_cpu_vote(&in_window(points, now));
        assert_eq!(
            expected, *decision,
            "the stretch of {}",
            instance.instance_id
        );
        let evaluation = evaluate_samples(&samples, now);
        assert_eq!(evaluation.rule, Rule::Iqr, "{}", instance.instance_id);
        assert_eq!(evaluation.decision, *decision, "{}", instance.instance_id);
        let iqr = evaluation.evidence.iqr.expect("IQR evidence");
        let cpu = iqr
            .signals
            .iter()
            .find(|s| s.signal == Signal::Cpu)
            .expect("CPU evidence");
        assert_eq!(cpu.fences, Some(fences), "{}", instance.instance_id);
    }
}

#[tokio::test]
async fn agent_memory_is_read_where_published() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    let cpu_points = shift(&trace("ec2_cpu_utilization_5f5533.csv", 0..12), last);
    // The CloudWatch agent published memory for every other period only, plus once for a
    // period without CPU. The values are the idle trace's, read as percentages.
    let memory_values = trace("ec2_cpu_utilization_24ae8d.csv", 0..7);
    let mut memory_points: Vec<Point> = cpu_points
        .iter()
        .step_by(2)
        .zip(&memory_values)
        .map(|(cpu, memory)| Point {
            at: cpu.at,
            value: memory.value,
        })
        .collect();
    let before_cpu = cpu_points[0].at - TimeDelta::seconds(PERIOD);
    memory_points.push(Point {
        at: before_cpu,
        value: memory_values[6].value,
    });

    let id = "i-0a9e47000000000b1";
    let client = writer(&moto, REGION);
    put(&client, cpu(id), &cpu_points).await;
    put(&client, memory(id), &memory_points).await;

    let collector = collector(&moto);
    let agent = instance(id, REGION);
    let samples = collect_one(&collector, &agent, now).await;

    assert_cpu_matches(&samples, &cpu_points);
    for (index, sample) in samples.iter().enumerate() {
        let expected = (index % 2 == 0).then(|| memory_values[index / 2].value);
        assert_eq!(
            sample.memory_usage(),
            expected,
            "memory at {}",
            sample.timestamp()
        );
    }
    let stats = collector.stats();
    assert_eq!(
        stats.without_cpu, 1,
        "the period with memory but no CPU yields no sample"
    );
    assert_eq!(stats.samples, cpu_points.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// Batching and incremental reads

#[tokio::test]
async fn instances_of_region_share_requests() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    // 130 instances in one region need two requests of at most 125 instances; 2 instances in
    // a second region need a third. Each instance gets one value of the mid-range trace.
    let values = trace("ec2_cpu_utilization_5f5533.csv", 0..132);
    let mut instances = Vec::new();
    for (index, point) in values.iter().enumerate() {
        let region = if index < 130 { REGION } else { "eu-west-1" };
        let id = format!("i-{index:08x}");
        let datapoint = Point {
            at: last,
            value: point.value,
        };
        put(&writer(&moto, region), cpu(&id), &[datapoint]).await;
        instances.push(instance(&id, region));
    }

    let collector = collector(&moto);
    let collected = collect(&collector, &instances, now).await;

    assert_eq!(collected.len(), instances.len());
    for (instance, point) in instances.iter().zip(&values) {
        let samples = samples_of(&collected, instance);
        assert_eq!(samples.len(), 1, "{}", instance.instance_id);
        assert_eq!(
            samples[0].cpu_utilization(),
            point.value,
            "{}",
            instance.instance_id
        );
    }
    assert_eq!(collector.stats().responses, 3);
}

#[tokio::test]
async fn regions_are_kept_apart() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    let id = "i-0123456789abcdef0";
    let points = trace("ec2_cpu_utilization_5f5533.csv", 0..2);
    put(
        &writer(&moto, REGION),
        cpu(id),
        &[Point {
            at: last,
            ..points[0]
        }],
    )
    .await;
    put(
        &writer(&moto, "eu-west-1"),
        cpu(id),
        &[Point {
            at: last,
            ..points[1]
        }],
    )
    .await;

    let collector = collector(&moto);
    let east = instance(id, REGION);
    let west = instance(id, "eu-west-1");
    let collected = collect(&collector, &[east.clone(), west.clone()], now).await;

    assert_eq!(
        samples_of(&collected, &east)[0].cpu_utilization(),
        points[0].value
    );
    assert_eq!(
        samples_of(&collected, &west)[0].cpu_utilization(),
        points[1].value
    );
}

#[tokio::test]
async fn only_new_periods_are_requested() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    let points = shift(&trace("ec2_cpu_utilization_5f5533.csv", 0..4), last);
    let id = "i-00000000000000042";
    let client = writer(&moto, REGION);
    put(&client, cpu(id), &points).await;

    let collector = collector(&moto);
    let tracked = instance(id, REGION);
    let first = collect_one(&collector, &tracked, now).await;
    assert_cpu_matches(&first, &points);
    assert_eq!(collector.stats().responses, 1);

    // Same time again: no period has ended since, so nothing is requested or returned.
    let again = collect_one(&collector, &tracked, now).await;
    assert!(again.is_empty());
    assert_eq!(collector.stats().responses, 1);

    // One period later: only the new datapoint comes back.
    let next = Point {
        at: now,
        value: trace("ec2_cpu_utilization_5f5533.csv", 4..5)[0].value,
    };
    put(&client, cpu(id), &[next]).await;
    let later = now + TimeDelta::seconds(PERIOD);
    let newer = collect_one(&collector, &tracked, later).await;
    assert_cpu_matches(&newer, &[next]);
    assert_eq!(collector.stats().responses, 2);
    assert_eq!(collector.stats().empty, 0);
}

#[tokio::test]
async fn settle_time_defers_recent_periods() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    let points = shift(&trace("ec2_cpu_utilization_5f5533.csv", 0..4), last);
    let id = "i-00000000000000043";
    put(&writer(&moto, REGION), cpu(id), &points).await;

    let config = CloudWatchConfig {
        settle: Duration::from_secs(PERIOD as u64),
        ..collector_config(&moto)
    };
    let collector = CloudWatchCollector::from_sdk_config(config, WINDOW, &sdk_config()).unwrap();
    let settled = instance(id, REGION);
    let samples = collect_one(&collector, &settled, now).await;

    assert_cpu_matches(&samples, &points[..3]);
}

#[tokio::test]
async fn mock_instances_are_left_out() {
    let moto = Moto::start();
    let (now, _) = now_and_last_period();
    let collector = collector(&moto);
    let mut mock = instance("web-1", "mock");
    mock.is_mock = true;

    let collected = collect(&collector, &[mock], now).await;

    assert!(collected.is_empty());
    assert_eq!(collector.stats().responses, 0);
}

// ---------------------------------------------------------------------------------------------
// Missing data and failures

#[tokio::test]
async fn unknown_instance_yields_no_sample() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    let known_id = "i-0000000000000abcd";
    let points = shift(&trace("ec2_cpu_utilization_5f5533.csv", 0..3), last);
    put(&writer(&moto, REGION), cpu(known_id), &points).await;

    let collector = collector(&moto);
    let known = instance(known_id, REGION);
    let unknown = instance("i-0000000000000dead", REGION);
    let instances = [known.clone(), unknown.clone()];

    let collected = collect(&collector, &instances, now).await;
    assert!(samples_of(&collected, &unknown).is_empty());
    assert_cpu_matches(&samples_of(&collected, &known), &points);
    assert_eq!(collector.stats().empty, 1);

    // Still nothing on the next period, and nothing for the engine to decide on.
    let later = now + TimeDelta::seconds(PERIOD);
    let collected = collect(&collector, &instances, later).await;
    assert!(samples_of(&collected, &unknown).is_empty());
    assert_eq!(collector.stats().empty, 2);
    let evaluation = evaluate_samples(&[], later);
    assert_eq!(evaluation.rule, Rule::NoData);
    assert_eq!(evaluation.decision, Decision::NoAction);
}

#[tokio::test]
async fn endpoint_down_fails_then_recovers() {
    let moto = Moto::start();
    let (now, last) = now_and_last_period();
    let points = shift(&trace("ec2_cpu_utilization_5f5533.csv", 0..3), last);
    let id = "i-00000000000000044";
    put(&writer(&moto, REGION), cpu(id), &points).await;

    let config = CloudWatchConfig {
        max_attempts: 2,
        attempt_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
        ..collector_config(&moto)
    };
    let collector = CloudWatchCollector::from_sdk_config(config, WINDOW, &sdk_config()).unwrap();
    let watched = instance(id, REGION);
    let first = collect_one(&collector, &watched, now).await;
    assert_cpu_matches(&first, &points);

    let port = moto.stop();
    let later = now + TimeDelta::seconds(PERIOD);
    let collected = collect(&collector, std::slice::from_ref(&watched), later).await;
    let error = error_of(&collected, &watched);
    let message = error.to_string();
    assert!(matches!(error, CollectError::Source { .. }), "{message}");
    assert!(message.contains(id), "{message}");
    assert!(
        message.contains("GetMetricData in us-east-1 failed"),
        "{message}"
    );
    assert_eq!(collector.stats().failures, 1);

    // moto is back on the same port, empty, and gets the next datapoint.
    let moto = Moto::start_on(port, &[]);
    let next = Point {
        at: now,
        value: 50.0,
    };
    put(&writer(&moto, REGION), cpu(id), &[next]).await;
    let recovered = collect_one(&collector, &watched, later).await;
    assert_cpu_matches(&recovered, &[next]);
}

#[tokio::test]
async fn rejected_credentials_fail_every_instance() {
    // With INITIAL_NO_AUTH_ACTION_COUNT=0 moto checks every request's access key, and the
    // dummy key is unknown to it. moto sends this error in the EC2 error format, which the
    // SDK cannot read a code from, so the message shows the status and the body.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a free loopback port")
        .port();
    let moto = Moto::start_on(port, &[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let (now, _) = now_and_last_period();
    let collector = collector(&moto);
    let first = instance("i-00000000000000045", REGION);
    let second = instance("i-00000000000000046", REGION);

    let collected = collect(&collector, &[first.clone(), second.clone()], now).await;

    for instance in [&first, &second] {
        let message = error_of(&collected, instance).to_string();
        assert!(message.contains("HTTP 403"), "{message}");
        assert!(message.contains("InvalidClientTokenId"), "{message}");
    }
    assert_eq!(collector.stats().failures, 2);
}

#[tokio::test]
#[expect(
    deprecated,
    reason = "the profile file types are reached through deprecated names"
)]
async fn missing_credentials_fail_each_instance() {
    let moto = Moto::start();
    let (now, _) = now_and_last_period();
    // A credential source that finds nothing: a named profile in empty profile files.
    let files = ProfileFiles::builder()
        .with_contents(ProfileFileKind::Config, "")
        .with_contents(ProfileFileKind::Credentials, "")
        .build();
    let provider = ProfileFileCredentialsProvider::builder()
        .profile_files(files)
        .profile_name("autoscaler")
        .build();
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build();
    let collector =
        CloudWatchCollector::from_sdk_config(collector_config(&moto), WINDOW, &sdk).unwrap();
    let unsigned = instance("i-00000000000000047", REGION);

    let collected = collect(&collector, std::slice::from_ref(&unsigned), now).await;

    let message = error_of(&collected, &unsigned).to_string();
    assert!(message.contains("request not sent"), "{message}");
    assert!(message.contains("credential provider"), "{message}");
    assert_eq!(collector.stats().failures, 1);
}

// ---------------------------------------------------------------------------------------------
// Standard configuration sources

/// Environment variable that passes [`from_env_child`] the instance id and the Unix time of
/// its one datapoint, separated by a space.
const CHILD_MARKER: &str = "AUTOSCALER_CLOUDWATCH_CHILD";

#[tokio::test]
async fn from_env_reads_standard_variables() {
    let moto = Moto::start();
    let (_, last) = now_and_last_period();
    let id = "i-0000000000000e4e4";
    put(
        &writer(&moto, REGION),
        cpu(id),
        &[Point {
            at: last,
            value: 12.5,
        }],
    )
    .await;

    // The SDK reads its settings from the process environment, which a test cannot change
    // for itself, so `from_env_child` runs in a child process with a clean AWS environment.
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-aws-file");
    std::fs::write(&empty, "").expect("writing an empty AWS file");
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["from_env_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_MARKER, format!("{id} {}", last.timestamp()))
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .output()
        .expect("running the child test");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
}

#[tokio::test]
#[ignore = "run by from_env_reads_standard_variables in a child process"]
async fn from_env_child() {
    let marker = std::env::var(CHILD_MARKER).expect("started by from_env_reads_standard_variables");
    let (id, secs) = marker.split_once(' ').expect("instance id and time");
    let last = DateTime::from_timestamp(secs.parse().expect("Unix time"), 0).expect("valid time");
    let now = last + TimeDelta::seconds(PERIOD);
    let config = CloudWatchConfig {
        period: Duration::from_secs(PERIOD as u64),
        ..CloudWatchConfig::for_window(WINDOW)
    };
    let collector = CloudWatchCollector::from_env(config, WINDOW)
        .await
        .expect("valid collector settings");
    let watched = instance(id, REGION);

    let samples = collect_one(&collector, &watched, now).await;

    assert_cpu_matches(
        &samples,
        &[Point {
            at: last,
            value: 12.5,
        }],
    );
}
