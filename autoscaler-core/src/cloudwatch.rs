//! A [`Collector`] that reads EC2 metrics from Amazon CloudWatch with `GetMetricData`.
//!
//! For each real instance it reads, per period, `CPUUtilization` (Average), `NetworkIn` and
//! `NetworkOut` (Sum, so bytes over the period) from namespace `AWS/EC2`, and
//! `mem_used_percent` (Average) from namespace `CWAgent`, all with the single dimension
//! `InstanceId`. Memory exists only where the CloudWatch agent publishes it with that dimension.
//!
//! - **Samples.** Each timestamp with a CPU datapoint becomes one sample with CloudWatch's
//!   timestamp, the start of its period. A signal without a datapoint at that timestamp is
//!   absent, never zero, and a timestamp without CPU yields no sample. Only periods that have
//!   ended ([`CloudWatchConfig::settle`] ago) are requested, and datapoints already returned
//!   for an instance are not requested again.
//! - **Batching.** The instances of one region share requests, up to 125 instances (500
//!   queries) per request; every page of a paginated response is read. Regions are requested
//!   concurrently, the batches of one region one after another.
//! - **Clients.** One SDK client per region, created on first use and kept. Credentials come
//!   from the SDK configuration: the standard chain with [`CloudWatchCollector::from_env`].
//!   The endpoint is [`CloudWatchConfig::endpoint_url`] if set, else the SDK's, which honours
//!   `AWS_ENDPOINT_URL`.
//! - **Errors.** Throttling and transient errors are retried by the SDK's standard retry mode
//!   with backoff. A request that still fails fails every instance of its batch with
//!   [`CollectError::Source`], whose message names the region, the AWS error code and message.
//!   An instance without any datapoint in the lookback gets no sample, a warning and a count in
//!   [`CollectorStats::empty`]. Other regions and batches are not affected.

mod config;
mod query;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::config::timeout::TimeoutConfig;
use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataError;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::ScanBy;
use chrono::{DateTime, TimeDelta, Utc};
use tracing::{debug, info, warn};
use uuid::Uuid;

pub use self::config::{CloudWatchConfig, InvalidCloudWatchConfig};
use self::query::{INSTANCES_PER_REQUEST, Results};
use crate::collector::{CollectError, Collected, Collector};
use crate::store::Instance;

/// Counts of the collector's work since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectorStats {
    /// GetMetricData responses received, one per page.
    pub responses: u64,
    /// Samples returned.
    pub samples: u64,
    /// Collections of an instance that found no datapoint in the whole lookback.
    pub empty: u64,
    /// Collections of an instance that failed.
    pub failures: u64,
    /// Timestamps that had memory or network datapoints but no CPU, so yielded no sample.
    pub without_cpu: u64,
    /// Timestamps whose values failed sample validation, such as CPU above 100 %.
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    responses: AtomicU64,
    samples: AtomicU64,
    empty: AtomicU64,
    failures: AtomicU64,
    without_cpu: AtomicU64,
    rejected: AtomicU64,
}

fn add(counter: &AtomicU64, count: usize) {
    counter.fetch_add(count as u64, Ordering::Relaxed);
}

/// State the collector keeps between calls.
#[derive(Debug, Default)]
struct Progress {
    /// Timestamp of the newest sample returned per instance; older ones are not requested.
    newest: HashMap<Uuid, DateTime<Utc>>,
    /// Instances already warned about for having no datapoints, until they get one.
    warned_empty: HashSet<Uuid>,
}

/// Collects samples of real EC2 instances from Amazon CloudWatch; see the [module](self) docs.
pub struct CloudWatchCollector {
    config: CloudWatchConfig,
    sdk: SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
    progress: Mutex<Progress>,
    counters: Counters,
}

impl CloudWatchCollector {
    /// Creates a collector whose credentials, endpoint and defaults come from the standard AWS
    /// sources: environment variables, the shared config and credentials files, web identity,
    /// the container and the instance metadata endpoints. `window` is the decision window
    /// ([`Policy::window`](crate::Policy::window)), which the lookback must cover.
    ///
    /// # Errors
    ///
    /// Returns the first setting of `config` that is out of range.
    pub async fn from_env(
        config: CloudWatchConfig,
        window: Duration,
    ) -> Result<CloudWatchCollector, InvalidCloudWatchConfig> {
        config.validate(window)?;
        // Every client gets its instance's region, so the loader needs none. Naming one here
        // also keeps the loader from asking the instance metadata endpoint for a region at
        // start-up, which would stall for seconds on a machine outside EC2.
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .load()
            .await;
        CloudWatchCollector::from_sdk_config(config, window, &sdk)
    }

    /// Creates a collector from an SDK configuration the caller loaded. The region of every
    /// request is the instance's, and `config` sets the retries, time limits and, if given,
    /// the endpoint.
    ///
    /// # Errors
    ///
    /// Returns the first setting of `config` that is out of range.
    pub fn from_sdk_config(
        config: CloudWatchConfig,
        window: Duration,
        sdk: &SdkConfig,
    ) -> Result<CloudWatchCollector, InvalidCloudWatchConfig> {
        config.validate(window)?;
        info!(
            period = ?config.period,
            lookback = ?config.lookback,
            endpoint = config.endpoint_url.as_deref().unwrap_or("from SDK configuration"),
            "CloudWatch collector configured"
        );
        Ok(CloudWatchCollector {
            config,
            sdk: sdk.clone(),
            clients: Mutex::new(HashMap::new()),
            progress: Mutex::new(Progress::default()),
            counters: Counters::default(),
        })
    }

    /// Returns the counts of the collector's work so far.
    pub fn stats(&self) -> CollectorStats {
        let counters = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CollectorStats {
            responses: load(&counters.responses),
            samples: load(&counters.samples),
            empty: load(&counters.empty),
            failures: load(&counters.failures),
            without_cpu: load(&counters.without_cpu),
            rejected: load(&counters.rejected),
        }
    }

    /// Returns the cached client of `region`, creating it on first use.
    fn client(&self, region: &str) -> Client {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| self.new_client(region))
            .clone()
    }

    fn new_client(&self, region: &str) -> Client {
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(self.config.attempt_timeout)
            .operation_timeout(self.config.operation_timeout)
            .build();
        let mut builder = aws_sdk_cloudwatch::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_owned()))
            .retry_config(RetryConfig::standard().with_max_attempts(self.config.max_attempts))
            .timeout_config(timeouts);
        if let Some(url) = &self.config.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        debug!(region, "created CloudWatch client");
        Client::from_conf(builder.build())
    }

    fn period_secs(&self) -> i64 {
        // `CloudWatchConfig::validate` ensured a whole number of minutes that fits in an i32.
        self.config.period.as_secs() as i64
    }

    /// Rounds `at` down to a period boundary, as CloudWatch aligns its datapoints.
    fn period_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let secs = at.timestamp();
        let aligned = secs - secs.rem_euclid(self.period_secs());
        DateTime::from_timestamp(aligned, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Returns the start of the lookback and the end of the newest period that has settled.
    fn range(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let before = |length: Duration| {
            TimeDelta::from_std(length)
                .ok()
                .and_then(|length| now.checked_sub_signed(length))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let start = self.period_start(before(self.config.lookback));
        let end = self.period_start(before(self.config.settle));
        (start, end)
    }

    /// Collects one batch of instances of `region`, at most [`INSTANCES_PER_REQUEST`].
    async fn collect_batch(
        &self,
        region: &str,
        batch: &[&Instance],
        now: DateTime<Utc>,
    ) -> Vec<Collected> {
        let (lookback_start, end) = self.range(now);
        let newest: Vec<Option<DateTime<Utc>>> = {
            let mut progress = self.lock_progress();
            progress.newest.retain(|_, at| *at >= lookback_start);
            batch
                .iter()
                .map(|instance| progress.newest.get(&instance.id).copied())
                .collect()
        };
        let period = TimeDelta::seconds(self.period_secs());
        let start = newest
            .iter()
            .map(|newest| newest.map_or(lookback_start, |at| at + period))
            .min()
            .unwrap_or(lookback_start);
        if start >= end {
            debug!(region, instances = batch.len(), "no new period to request");
            return batch.iter().map(|i| ok(i, Vec::new())).collect();
        }

        let ids: Vec<&str> = batch.iter().map(|i| i.instance_id.as_str()).collect();
        match self.fetch(region, &ids, start, end).await {
            Ok(results) => batch
                .iter()
                .zip(newest)
                .enumerate()
                .map(|(index, (instance, newest))| {
                    self.take_samples(instance, results.instance(index), newest, region)
                })
                .collect(),
            Err(message) => {
                add(&self.counters.failures, batch.len());
                batch.iter().map(|i| failed(i, message.clone())).collect()
            }
        }
    }

    /// Sends one GetMetricData request and reads all of its pages.
    async fn fetch(
        &self,
        region: &str,
        instance_ids: &[&str],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Results, String> {
        let period = i32::try_from(self.period_secs()).unwrap_or(i32::MAX);
        let queries = query::build_queries(instance_ids, period);
        debug!(region, instances = instance_ids.len(), %start, %end, "requesting GetMetricData");
        let mut pages = self
            .client(region)
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(AwsDateTime::from_secs(start.timestamp()))
            .end_time(AwsDateTime::from_secs(end.timestamp()))
            .scan_by(ScanBy::TimestampAscending)
            .into_paginator()
            .send();

        // NOTE: moto, the server of the integration tests, never splits a response into pages,
        // so reading several pages is covered only by the unit tests of `Results::add_page`.
        let mut results = Results::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| {
                format!("GetMetricData in {region} failed: {}", describe(&error))
            })?;
            add(&self.counters.responses, 1);
            for message in page.messages() {
                debug!(
                    region,
                    code = message.code(),
                    message = message.value(),
                    "GetMetricData message"
                );
            }
            results.add_page(page.metric_data_results());
        }
        Ok(results)
    }

    /// Turns one instance's datapoints into its result, and updates the progress and counts.
    fn take_samples(
        &self,
        instance: &Instance,
        series: Result<query::InstanceSeries<'_>, String>,
        newest: Option<DateTime<Utc>>,
        region: &str,
    ) -> Collected {
        let series = match series {
            Ok(series) => series,
            Err(message) => {
                add(&self.counters.failures, 1);
                return failed(instance, format!("GetMetricData in {region}: {message}"));
            }
        };
        let assembled = series.assemble(newest);
        for (at, invalid) in &assembled.rejected {
            warn!(instance_id = %instance.instance_id, %at, %invalid, "datapoint rejected");
        }
        add(&self.counters.without_cpu, assembled.without_cpu);
        add(&self.counters.rejected, assembled.rejected.len());
        add(&self.counters.samples, assembled.samples.len());

        let mut progress = self.lock_progress();
        if let Some(latest) = assembled.samples.last() {
            progress.newest.insert(instance.id, latest.timestamp());
            progress.warned_empty.remove(&instance.id);
        } else if newest.is_none() && series.is_empty() {
            self.note_empty(&mut progress, instance, region);
        }
        ok(instance, assembled.samples)
    }

    /// Counts an instance without datapoints, warning once until it gets one.
    fn note_empty(&self, progress: &mut Progress, instance: &Instance, region: &str) {
        add(&self.counters.empty, 1);
        let lookback = self.config.lookback;
        if progress.warned_empty.insert(instance.id) {
            warn!(
                instance_id = %instance.instance_id,
                region,
                ?lookback,
                "no CloudWatch datapoints for instance; check the instance id, region and state"
            );
        } else {
            debug!(instance_id = %instance.instance_id, region, "still no CloudWatch datapoints");
        }
    }

    fn lock_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn collect_region(
        &self,
        region: &str,
        instances: &[&Instance],
        now: DateTime<Utc>,
    ) -> Vec<Collected> {
        let mut collected = Vec::with_capacity(instances.len());
        for batch in instances.chunks(INSTANCES_PER_REQUEST) {
            collected.extend(self.collect_batch(region, batch, now).await);
        }
        collected
    }
}

#[async_trait]
impl Collector for CloudWatchCollector {
    /// Collects every real instance of `instances`; mock instances are left out.
    async fn collect(&self, instances: &[Instance], now: DateTime<Utc>) -> Vec<Collected> {
        let mut by_region: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
        for instance in instances.iter().filter(|instance| !instance.is_mock) {
            by_region
                .entry(instance.region.as_str())
                .or_default()
                .push(instance);
        }
        let regions = by_region
            .iter()
            .map(|(region, instances)| self.collect_region(region, instances, now));
        futures::future::join_all(regions)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

fn ok(instance: &Instance, samples: Vec<crate::model::Sample>) -> Collected {
    Collected {
        instance: instance.id,
        result: Ok(samples),
    }
}

fn failed(instance: &Instance, message: String) -> Collected {
    Collected {
        instance: instance.id,
        result: Err(CollectError::Source {
            instance_id: instance.instance_id.clone(),
            message,
        }),
    }
}

/// Renders a failed request: the AWS error code and message of an error response, else the
/// reason the request was not sent or got no response, with its causes.
fn describe(error: &SdkError<GetMetricDataError, HttpResponse>) -> String {
    match error {
        SdkError::ServiceError(context) => {
            let raw = context.raw();
            error_response_text(
                context.err().code(),
                context.err().message(),
                raw.status().as_u16(),
                raw.body().bytes(),
            )
        }
        SdkError::TimeoutError(_) => "request timed out".to_owned(),
        SdkError::DispatchFailure(failure) => {
            let what = if failure.is_io() {
                "could not connect to the endpoint"
            } else if failure.is_timeout() {
                "timed out connecting to the endpoint"
            } else {
                "request not sent"
            };
            match failure.as_connector_error() {
                Some(cause) => format!("{what}: {}", causes(cause)),
                None => what.to_owned(),
            }
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

/// Returns the error response's code and message. A response without a code, because it is not
/// in the AWS query error format, is shown by its HTTP status and the start of its body.
fn error_response_text(
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
    body: Option<&[u8]>,
) -> String {
    match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        (None, _) => {
            let body = body.map(String::from_utf8_lossy).unwrap_or_default();
            let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
            let start: String = one_line.chars().take(300).collect();
            format!("HTTP {status} without an AWS error code: {start}")
        }
    }
}

/// Joins the messages of the errors that caused `error`, outermost first.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = Vec::new();
    let mut cause = error.source();
    while let Some(error) = cause {
        messages.push(error.to_string());
        cause = error.source();
    }
    if messages.is_empty() {
        error.to_string()
    } else {
        messages.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(period: u64, settle: u64) -> CloudWatchCollector {
        let config = CloudWatchConfig {
            period: Duration::from_secs(period),
            lookback: Duration::from_secs(3600),
            settle: Duration::from_secs(settle),
            ..CloudWatchConfig::default()
        };
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        CloudWatchCollector::from_sdk_config(config, Duration::from_secs(300), &sdk).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn range_ends_at_last_settled_period() {
        let now = at(1_700_000_290);
        let (start, end) = collector(60, 0).range(now);
        assert_eq!(end, at(1_700_000_280));
        assert_eq!(start, at(1_699_996_680));

        let (_, end) = collector(300, 0).range(now);
        assert_eq!(end, at(1_700_000_100));

        let (_, end) = collector(60, 120).range(now);
        assert_eq!(end, at(1_700_000_160));
    }

    #[test]
    fn error_response_shows_code_and_message() {
        let text = error_response_text(Some("Throttling"), Some("Rate exceeded"), 400, None);
        assert_eq!(text, "Throttling: Rate exceeded");
        let text = error_response_text(Some("AccessDenied"), None, 403, None);
        assert_eq!(text, "AccessDenied");
    }

    #[test]
    fn error_response_without_code_shows_status_and_body() {
        let body = b"<?xml version=\"1.0\"?>\n<Error><Code>Odd</Code></Error>\n";
        let text = error_response_text(None, None, 403, Some(body));
        assert_eq!(
            text,
            "HTTP 403 without an AWS error code: <?xml version=\"1.0\"?> <Error><Code>Odd</Code></Error>"
        );
    }
}
