//! Metric sources: the [`Collector`] trait and the mock collector.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::model::Sample;
use crate::store::Instance;

/// Failure to collect one instance's metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// This collector does not serve the instance (for example a real instance handed to the
    /// mock collector).
    #[error("instance {instance_id} is not served by this collector")]
    Unsupported {
        /// The instance's cloud or mock id.
        instance_id: String,
    },
    /// The metric source rejected or failed the request.
    #[error("collecting metrics of {instance_id} failed: {message}")]
    Source {
        /// The instance's cloud or mock id.
        instance_id: String,
        /// What failed, including the source's error code where it has one.
        message: String,
    },
}

/// The result of collecting one instance.
#[derive(Debug)]
pub struct Collected {
    /// The instance's [`Instance::id`].
    pub instance: Uuid,
    /// New samples, possibly none, or why there are none.
    pub result: Result<Vec<Sample>, CollectError>,
}

/// A source of samples for monitored instances.
///
/// One call covers many instances so that a source can batch its requests. The result has one
/// entry per instance that the collector serves; an instance it does not serve may be left out.
#[async_trait]
pub trait Collector: Send + Sync + 'static {
    /// Collects samples of `instances` up to `now`.
    async fn collect(&self, instances: &[Instance], now: DateTime<Utc>) -> Vec<Collected>;
}

/// Generates a plausible sample for each mock instance: CPU and memory uniform in 40-50 %,
/// network in 0.5-5 MB and network out 0.25-2.5 MB per sample. Seedable for tests.
#[derive(Debug)]
pub struct MockCollector {
    rng: Mutex<StdRng>,
}

impl MockCollector {
    /// Creates a collector seeded from the operating system.
    pub fn new() -> MockCollector {
        MockCollector {
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// Creates a collector whose samples are fixed by `seed`.
    pub fn seeded(seed: u64) -> MockCollector {
        MockCollector {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    fn sample(&self, now: DateTime<Utc>) -> Sample {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cpu = rng.random_range(40.0..=50.0);
        let memory = rng.random_range(40.0..=50.0);
        let network_in = rng.random_range(500_000.0..=5_000_000.0_f64).round();
        let network_out = rng.random_range(250_000.0..=2_500_000.0_f64).round();
        Sample::new(now, cpu, Some(memory), network_in, network_out)
            .expect("mock values are within the valid ranges")
    }
}

impl Default for MockCollector {
    fn default() -> MockCollector {
        MockCollector::new()
    }
}

#[async_trait]
impl Collector for MockCollector {
    async fn collect(&self, instances: &[Instance], now: DateTime<Utc>) -> Vec<Collected> {
        instances
            .iter()
            .filter(|instance| instance.is_mock)
            .map(|instance| Collected {
                instance: instance.id,
                result: Ok(vec![self.sample(now)]),
            })
            .collect()
    }
}

/// Sends mock instances to one collector and real ones to another.
pub struct RoutingCollector {
    mock: Box<dyn Collector>,
    real: Option<Box<dyn Collector>>,
}

impl RoutingCollector {
    /// Routes mock instances to `mock` and the others to `real`; without `real`, real
    /// instances get no samples.
    pub fn new(mock: Box<dyn Collector>, real: Option<Box<dyn Collector>>) -> RoutingCollector {
        RoutingCollector { mock, real }
    }
}

#[async_trait]
impl Collector for RoutingCollector {
    async fn collect(&self, instances: &[Instance], now: DateTime<Utc>) -> Vec<Collected> {
        let (mock, real): (Vec<Instance>, Vec<Instance>) = instances
            .iter()
            .cloned()
            .partition(|instance| instance.is_mock);
        let mut collected = self.mock.collect(&mock, now).await;
        if let Some(collector) = &self.real
            && !real.is_empty()
        {
            collected.extend(collector.collect(&real, now).await);
        }
        collected
    }
}
