//! GetMetricData queries for a batch of instances, and the samples built from their results.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, StatusCode,
};
use chrono::{DateTime, Utc};

use crate::model::{InvalidSample, Sample};

/// Most metric queries one GetMetricData request may carry (CloudWatch API reference).
pub(super) const MAX_QUERIES_PER_REQUEST: usize = 500;

/// Instances whose queries fit in one request.
pub(super) const INSTANCES_PER_REQUEST: usize = MAX_QUERIES_PER_REQUEST / MetricKind::ALL.len();

/// One CloudWatch metric read per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum MetricKind {
    /// `AWS/EC2 CPUUtilization`, Average: percent of the period.
    Cpu,
    /// `AWS/EC2 NetworkIn`, Sum: bytes received over the period.
    NetworkIn,
    /// `AWS/EC2 NetworkOut`, Sum: bytes sent over the period.
    NetworkOut,
    /// `CWAgent mem_used_percent`, Average: published only where the CloudWatch agent runs.
    Memory,
}

impl MetricKind {
    pub(super) const ALL: [MetricKind; 4] = [
        MetricKind::Cpu,
        MetricKind::NetworkIn,
        MetricKind::NetworkOut,
        MetricKind::Memory,
    ];

    fn namespace(self) -> &'static str {
        match self {
            MetricKind::Memory => "CWAgent",
            _ => "AWS/EC2",
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            MetricKind::Cpu => "CPUUtilization",
            MetricKind::NetworkIn => "NetworkIn",
            MetricKind::NetworkOut => "NetworkOut",
            MetricKind::Memory => "mem_used_percent",
        }
    }

    /// Returns the statistic over one period. Network uses Sum because EC2 publishes bytes per
    /// datapoint: the sum over the period is the bytes of the period, the unit a sample
    /// stores, whether the instance publishes every minute or every 5 minutes.
    fn statistic(self) -> &'static str {
        match self {
            MetricKind::NetworkIn | MetricKind::NetworkOut => "Sum",
            MetricKind::Cpu | MetricKind::Memory => "Average",
        }
    }

    /// Prefix of the query ids; an id must start with a lowercase letter.
    fn id_prefix(self) -> &'static str {
        match self {
            MetricKind::Cpu => "cpu",
            MetricKind::NetworkIn => "netin",
            MetricKind::NetworkOut => "netout",
            MetricKind::Memory => "mem",
        }
    }

    /// Returns the id of the query for the instance at `index` of a batch.
    fn query_id(self, index: usize) -> String {
        format!("{}{index}", self.id_prefix())
    }
}

/// Builds the queries for `instance_ids`, one per metric and instance, each over `period_secs`.
///
/// The caller keeps a batch within [`INSTANCES_PER_REQUEST`].
pub(super) fn build_queries(instance_ids: &[&str], period_secs: i32) -> Vec<MetricDataQuery> {
    let mut queries = Vec::with_capacity(instance_ids.len() * MetricKind::ALL.len());
    for (index, instance_id) in instance_ids.iter().enumerate() {
        for metric in MetricKind::ALL {
            let dimension = Dimension::builder()
                .name("InstanceId")
                .value(*instance_id)
                .build();
            let stat = MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(metric.namespace())
                        .metric_name(metric.name())
                        .dimensions(dimension)
                        .build(),
                )
                .period(period_secs)
                .stat(metric.statistic())
                .build();
            queries.push(
                MetricDataQuery::builder()
                    .id(metric.query_id(index))
                    .metric_stat(stat)
                    .return_data(true)
                    .build(),
            );
        }
    }
    queries
}

/// The datapoints of one query, by Unix timestamp in seconds.
type Series = BTreeMap<i64, f64>;

/// A query for which CloudWatch returned an error status instead of datapoints.
#[derive(Debug, Clone, PartialEq)]
struct FailedQuery {
    status: String,
    messages: Vec<String>,
}

/// The results of one request, merged over all of its pages.
#[derive(Debug, Default)]
pub(super) struct Results {
    series: HashMap<String, Series>,
    failed: HashMap<String, FailedQuery>,
}

impl Results {
    /// Adds one page of results. A query whose datapoints span several pages appears on each.
    pub(super) fn add_page(&mut self, page: &[MetricDataResult]) {
        for result in page {
            let Some(id) = result.id() else {
                continue;
            };
            if let Some(status @ (StatusCode::InternalError | StatusCode::Forbidden)) =
                result.status_code()
            {
                let messages = result
                    .messages()
                    .iter()
                    .map(|m| format!("{}: {}", m.code().unwrap_or("-"), m.value().unwrap_or("-")))
                    .collect();
                let failure = FailedQuery {
                    status: status.as_str().to_owned(),
                    messages,
                };
                self.failed.insert(id.to_owned(), failure);
            }
            let series = self.series.entry(id.to_owned()).or_default();
            for (timestamp, value) in result.timestamps().iter().zip(result.values()) {
                series.insert(timestamp.secs(), *value);
            }
        }
    }

    /// Returns the datapoints of the instance at `index` of the batch, or the error status of
    /// one of its queries.
    pub(super) fn instance(&self, index: usize) -> Result<InstanceSeries<'_>, String> {
        for metric in MetricKind::ALL {
            if let Some(failure) = self.failed.get(&metric.query_id(index)) {
                let mut message = format!(
                    "query of {} returned status {}",
                    metric.name(),
                    failure.status
                );
                if !failure.messages.is_empty() {
                    message.push_str(": ");
                    message.push_str(&failure.messages.join("; "));
                }
                return Err(message);
            }
        }
        let series = |metric: MetricKind| self.series.get(&metric.query_id(index));
        Ok(InstanceSeries {
            cpu: series(MetricKind::Cpu),
            memory: series(MetricKind::Memory),
            network_in: series(MetricKind::NetworkIn),
            network_out: series(MetricKind::NetworkOut),
        })
    }
}

/// The datapoints of one instance, per metric; `None` where a query returned nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct InstanceSeries<'a> {
    cpu: Option<&'a Series>,
    memory: Option<&'a Series>,
    network_in: Option<&'a Series>,
    network_out: Option<&'a Series>,
}

/// Samples built from one instance's datapoints.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Assembled {
    /// One sample per CPU datapoint newer than the cut-off, oldest first.
    pub(super) samples: Vec<Sample>,
    /// Timestamps newer than the cut-off with some datapoint but no CPU, which yield no sample.
    pub(super) without_cpu: usize,
    /// Timestamps whose values failed validation, with the error.
    pub(super) rejected: Vec<(DateTime<Utc>, InvalidSample)>,
}

impl InstanceSeries<'_> {
    /// Returns whether any query of the instance returned a datapoint.
    pub(super) fn is_empty(&self) -> bool {
        [self.cpu, self.memory, self.network_in, self.network_out]
            .iter()
            .all(|series| series.is_none_or(BTreeMap::is_empty))
    }

    /// Builds a sample for every timestamp after `after` that has a CPU datapoint.
    ///
    /// CPU is the one signal every EC2 instance publishes and the one the rules always need,
    /// so a timestamp without it yields no sample. Memory and network are taken at the same
    /// timestamp when present and left absent otherwise, never set to zero.
    pub(super) fn assemble(&self, after: Option<DateTime<Utc>>) -> Assembled {
        let after_secs = after.map(|at| at.timestamp());
        let is_new = |secs: &i64| after_secs.is_none_or(|after| *secs > after);
        let value = |series: Option<&Series>, secs: i64| series.and_then(|s| s.get(&secs).copied());

        let mut assembled = Assembled::default();
        for (&secs, &cpu) in self
            .cpu
            .into_iter()
            .flatten()
            .filter(|(secs, _)| is_new(secs))
        {
            let Some(timestamp) = DateTime::from_timestamp(secs, 0) else {
                continue;
            };
            let sample = Sample::partial(
                timestamp,
                cpu,
                value(self.memory, secs),
                value(self.network_in, secs),
                value(self.network_out, secs),
            );
            match sample {
                Ok(sample) => assembled.samples.push(sample),
                Err(invalid) => assembled.rejected.push((timestamp, invalid)),
            }
        }

        let mut without_cpu: Vec<i64> = [self.memory, self.network_in, self.network_out]
            .into_iter()
            .flatten()
            .flat_map(BTreeMap::keys)
            .copied()
            .filter(|secs| is_new(secs) && value(self.cpu, *secs).is_none())
            .collect();
        without_cpu.sort_unstable();
        without_cpu.dedup();
        assembled.without_cpu = without_cpu.len();
        assembled
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
    use aws_sdk_cloudwatch::types::MessageData;

    use super::*;

    const T0: i64 = 1_700_000_100;

    fn result(id: &str, points: &[(i64, f64)]) -> MetricDataResult {
        let mut builder = MetricDataResult::builder()
            .id(id)
            .status_code(StatusCode::Complete);
        for &(secs, value) in points {
            builder = builder
                .timestamps(AwsDateTime::from_secs(secs))
                .values(value);
        }
        builder.build()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn queries_cover_every_metric_of_every_instance() {
        let queries = build_queries(&["i-0123456789abcdef0", "i-12345678"], 300);
        assert_eq!(queries.len(), 8);

        let ids: Vec<&str> = queries.iter().filter_map(|q| q.id()).collect();
        assert_eq!(
            ids,
            [
                "cpu0", "netin0", "netout0", "mem0", "cpu1", "netin1", "netout1", "mem1"
            ]
        );

        let network_in = queries[5].metric_stat().unwrap();
        assert_eq!(network_in.period(), Some(300));
        assert_eq!(network_in.stat(), Some("Sum"));
        let metric = network_in.metric().unwrap();
        assert_eq!(metric.namespace(), Some("AWS/EC2"));
        assert_eq!(metric.metric_name(), Some("NetworkIn"));
        assert_eq!(metric.dimensions()[0].name(), Some("InstanceId"));
        assert_eq!(metric.dimensions()[0].value(), Some("i-12345678"));

        let memory = queries[3].metric_stat().unwrap();
        assert_eq!(memory.stat(), Some("Average"));
        assert_eq!(memory.metric().unwrap().namespace(), Some("CWAgent"));
    }

    #[test]
    fn batch_fits_request_limit() {
        assert_eq!(INSTANCES_PER_REQUEST, 125);
        assert!(INSTANCES_PER_REQUEST * MetricKind::ALL.len() <= MAX_QUERIES_PER_REQUEST);
    }

    #[test]
    fn pages_merge_per_query() {
        let mut results = Results::default();
        results.add_page(&[
            result("cpu0", &[(T0, 10.0)]),
            result("netin0", &[(T0, 5.0)]),
        ]);
        results.add_page(&[result("cpu0", &[(T0 + 60, 20.0)])]);

        let assembled = results.instance(0).unwrap().assemble(None);
        let cpu: Vec<f64> = assembled
            .samples
            .iter()
            .map(|s| s.cpu_utilization())
            .collect();
        assert_eq!(cpu, [10.0, 20.0]);
        assert_eq!(assembled.samples[0].network_in(), Some(5.0));
        assert_eq!(assembled.samples[1].network_in(), None);
    }

    #[test]
    fn missing_signals_stay_absent() {
        let mut results = Results::default();
        results.add_page(&[
            result("cpu0", &[(T0, 40.0), (T0 + 60, 41.0)]),
            result("mem0", &[(T0 + 60, 55.5)]),
            result("netout0", &[(T0, 0.0)]),
        ]);
        let samples = results.instance(0).unwrap().assemble(None).samples;

        assert_eq!(samples[0].timestamp(), at(T0));
        assert_eq!(samples[0].memory_usage(), None);
        assert_eq!(samples[0].network_in(), None);
        assert_eq!(samples[0].network_out(), Some(0.0));
        assert_eq!(samples[1].memory_usage(), Some(55.5));
        assert_eq!(samples[1].network_out(), None);
    }

    #[test]
    fn timestamps_without_cpu_are_skipped() {
        let mut results = Results::default();
        results.add_page(&[
            result("cpu0", &[(T0, 40.0)]),
            result("mem0", &[(T0, 50.0), (T0 + 60, 51.0)]),
            result("netin0", &[(T0 + 60, 9.0), (T0 + 120, 9.0)]),
        ]);
        let assembled = results.instance(0).unwrap().assemble(None);
        assert_eq!(assembled.samples.len(), 1);
        assert_eq!(assembled.without_cpu, 2);
    }

    #[test]
    fn cut_off_drops_datapoints_returned_before() {
        let mut results = Results::default();
        results.add_page(&[
            result("cpu0", &[(T0, 1.0), (T0 + 60, 2.0), (T0 + 120, 3.0)]),
            result("mem0", &[(T0 + 60, 50.0)]),
        ]);
        let assembled = results.instance(0).unwrap().assemble(Some(at(T0 + 60)));
        let timestamps: Vec<_> = assembled.samples.iter().map(|s| s.timestamp()).collect();
        assert_eq!(timestamps, [at(T0 + 120)]);
        assert_eq!(assembled.without_cpu, 0);
    }

    #[test]
    fn invalid_values_are_rejected() {
        let mut results = Results::default();
        results.add_page(&[result("cpu0", &[(T0, 40.0), (T0 + 60, 140.0)])]);
        let assembled = results.instance(0).unwrap().assemble(None);
        assert_eq!(assembled.samples.len(), 1);
        assert_eq!(assembled.rejected.len(), 1);
        assert_eq!(assembled.rejected[0].0, at(T0 + 60));
        assert_eq!(assembled.rejected[0].1.field, "cpu_utilization");
    }

    #[test]
    fn instances_of_batch_stay_apart() {
        let mut results = Results::default();
        results.add_page(&[result("cpu0", &[(T0, 1.0)]), result("cpu1", &[(T0, 2.0)])]);
        let first = results.instance(0).unwrap().assemble(None).samples;
        let second = results.instance(1).unwrap().assemble(None).samples;
        assert_eq!(first[0].cpu_utilization(), 1.0);
        assert_eq!(second[0].cpu_utilization(), 2.0);
        assert!(results.instance(2).unwrap().is_empty());
    }

    #[test]
    fn failed_query_fails_its_instance_only() {
        let forbidden = MetricDataResult::builder()
            .id("mem1")
            .status_code(StatusCode::Forbidden)
            .messages(
                MessageData::builder()
                    .code("Forbidden")
                    .value("no access to namespace CWAgent")
                    .build(),
            )
            .build();
        let mut results = Results::default();
        results.add_page(&[result("cpu0", &[(T0, 1.0)]), forbidden]);

        assert!(results.instance(0).is_ok());
        let error = results.instance(1).unwrap_err();
        assert_eq!(
            error,
            "query of mem_used_percent returned status Forbidden: \
             Forbidden: no access to namespace CWAgent"
        );
    }
}
