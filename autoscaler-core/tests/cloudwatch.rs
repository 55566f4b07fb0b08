//! The CloudWatch collector through the real AWS SDK against moto, a CloudWatch-compatible
//! server started on a free loopback port, with dummy credentials.
//!
//! The input is stretches of real CloudWatch traces (`testdata/cloudwatch`), loaded with
//! `PutMetricData` with their timestamps shifted to end just before the test's `now`. moto
//! comes from PyPI (`moto[server]`); `.ci/run` installs it into `.venv`. The harness and the
//! trace loading live in `cloudwatch_support`, which the server's tests share.

mod cloudwatch_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use autoscaler_core::cloudwatch::{CloudWatchCollector, CloudWatchConfig};
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
use aws_sdk_cloudwatch::config::SharedCredentialsProvider;
use chrono::{DateTime, TimeDelta, Utc};
use cloudwatch_support::{
    Moto, PERIOD, Point, REGION, cpu, expected_cpu_vote, memory, network_in, now_and_last_period,
    put, sdk_config, shift, trace, writer,
};
use uuid::Uuid;

/// A 60-minute decision window contains 11 complete periods of the traces.
const WINDOW: Duration = Duration::from_secs(3600);

/// Bound on one collection, so that a hang fails the test instead of stalling it.
const COLLECT_LIMIT: Duration = Duration::from_secs(120);

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
