//! The collection, decision and retention ticks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::clock::Clock;
use crate::collector::Collector;
use crate::engine;
use crate::model::Sample;
use crate::policy::Policy;
use crate::store::{self, CollectionError, Instance, NewDecisionRecord, Store};

/// How often the ticks run and how long claims and data last.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Period of the collection tick.
    pub collect_every: Duration,
    /// Period of the decision tick.
    pub decide_every: Duration,
    /// How long a claim on an instance lasts (see [`Store::claim_monitored`]).
    pub lease: Duration,
    /// Identifies this process to the store's leases.
    pub holder: Uuid,
    /// Samples and decisions older than this are deleted; `None` keeps everything.
    pub retention: Option<Duration>,
    /// Period of the retention tick.
    pub purge_every: Duration,
    /// Rows deleted per table per retention tick.
    pub purge_batch: usize,
}

impl Default for SchedulerConfig {
    fn default() -> SchedulerConfig {
        SchedulerConfig {
            collect_every: Duration::from_secs(30),
            decide_every: Duration::from_secs(15),
            lease: Duration::from_secs(60),
            holder: Uuid::new_v4(),
            retention: None,
            purge_every: Duration::from_secs(3600),
            purge_batch: 10_000,
        }
    }
}

/// Counts of one tick's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Instances the tick looked at.
    pub instances: usize,
    /// Samples stored by a collection tick.
    pub samples: usize,
    /// Evaluations recorded by a decision tick, or by a collection tick for instances it has
    /// just claimed.
    pub evaluated: usize,
    /// Scaling actions applied by a decision tick.
    pub applied: usize,
    /// Instances whose work failed.
    pub failed: usize,
}

/// Drives collection and decisions for every monitored instance.
pub struct Scheduler {
    store: Arc<dyn Store>,
    collector: Arc<dyn Collector>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    config: SchedulerConfig,
    /// The instances returned by the latest claim.
    held: Mutex<HashSet<Uuid>>,
}

impl Scheduler {
    /// Creates a scheduler; nothing runs until [`Scheduler::run`] or a tick method is called.
    pub fn new(
        store: Arc<dyn Store>,
        collector: Arc<dyn Collector>,
        clock: Arc<dyn Clock>,
        policy: Policy,
        config: SchedulerConfig,
    ) -> Scheduler {
        Scheduler {
            store,
            collector,
            clock,
            policy,
            config,
            held: Mutex::new(HashSet::new()),
        }
    }

    /// Returns the policy that decisions are made with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Returns the tick periods, lease and holder id this scheduler runs with.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Returns how many monitored instances the latest claim returned, that is how many this
    /// process collects and decides for.
    pub fn held_instances(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Collects a sample of each monitored instance and stores them in one batch.
    ///
    /// Instances claimed since the previous tick are decided first. A sample that their
    /// previous holder collected but did not decide is then evaluated instead of being
    /// superseded by the new sample.
    ///
    /// # Errors
    ///
    /// Fails only when the monitored instances cannot be read; failures of single instances
    /// are logged, recorded on the instance and counted in the report.
    pub async fn collect_tick(&self) -> store::Result<TickReport> {
        let now = self.clock.now();
        let (instances, acquired) = self.claim_and_track(now).await?;
        let mut report = TickReport {
            instances: instances.len(),
            ..TickReport::default()
        };
        if instances.is_empty() {
            return Ok(report);
        }
        if !acquired.is_empty() {
            match self.decide_instances(&acquired, now).await {
                Ok(pending) => {
                    report.evaluated = pending.evaluated;
                    report.applied = pending.applied;
                    report.failed = pending.failed;
                }
                // The decision tick retries these instances; collection goes on.
                Err(cause) => warn!(%cause, "deciding newly claimed instances failed"),
            }
        }

        let by_id: HashMap<Uuid, &Instance> = instances.iter().map(|i| (i.id, i)).collect();
        let mut batch: Vec<(Uuid, Sample)> = Vec::new();
        for collected in self.collector.collect(&instances, now).await {
            let Some(instance) = by_id.get(&collected.instance) else {
                continue;
            };
            match collected.result {
                Ok(samples) => {
                    batch.extend(samples.into_iter().map(|sample| (instance.id, sample)));
                    if instance.last_collection_error.is_some() {
                        self.note_collection(instance, None).await;
                    }
                }
                Err(cause) => {
                    report.failed += 1;
                    warn!(instance_id = %instance.instance_id, %cause, "metric collection failed");
                    let error = CollectionError {
                        message: cause.to_string(),
                        at: now,
                    };
                    self.note_collection(instance, Some(error)).await;
                }
            }
        }

        let (stored, failed) = self.append(&batch, &by_id).await;
        report.samples = stored;
        report.failed += failed;
        debug!(
            instances = report.instances,
            samples = report.samples,
            "collection tick done"
        );
        Ok(report)
    }

    /// Stores `batch` in one call; when that fails, stores each instance's samples on its own
    /// so that one instance's failure does not lose the others' samples.
    async fn append(
        &self,
        batch: &[(Uuid, Sample)],
        by_id: &HashMap<Uuid, &Instance>,
    ) -> (usize, usize) {
        if batch.is_empty() {
            return (0, 0);
        }
        match self.store.append_samples(batch).await {
            Ok(stored) => return (stored, 0),
            Err(cause) => warn!(%cause, "batched sample append failed; retrying per instance"),
        }
        let mut per_instance: HashMap<Uuid, Vec<(Uuid, Sample)>> = HashMap::new();
        for &(id, sample) in batch {
            per_instance.entry(id).or_default().push((id, sample));
        }
        let (mut stored, mut failed) = (0, 0);
        for (id, samples) in per_instance {
            match self.store.append_samples(&samples).await {
                Ok(count) => stored += count,
                Err(cause) => {
                    failed += 1;
                    let instance_id = by_id.get(&id).map_or("unknown", |i| i.instance_id.as_str());
                    error!(instance_id, %cause, "storing samples failed");
                }
            }
        }
        (stored, failed)
    }

    async fn note_collection(&self, instance: &Instance, error: Option<CollectionError>) {
        if let Err(cause) = self.store.set_collection_error(instance.id, error).await {
            error!(instance_id = %instance.instance_id, %cause, "recording collection status failed");
        }
    }

    /// Evaluates every monitored instance that has a sample newer than its last evaluation,
    /// records each evaluation and applies its scaling change.
    ///
    /// # Errors
    ///
    /// Fails only when the instances or their windows cannot be read; failures of single
    /// instances are logged and counted in the report.
    pub async fn decide_tick(&self) -> store::Result<TickReport> {
        let now = self.clock.now();
        let (instances, _) = self.claim_and_track(now).await?;
        let report = self.decide_instances(&instances, now).await?;
        debug!(
            instances = report.instances,
            evaluated = report.evaluated,
            "decision tick done"
        );
        Ok(report)
    }

    /// Evaluates those of `instances` that have a sample newer than their last evaluation.
    async fn decide_instances(
        &self,
        instances: &[Instance],
        now: DateTime<Utc>,
    ) -> store::Result<TickReport> {
        let mut report = TickReport {
            instances: instances.len(),
            ..TickReport::default()
        };
        if instances.is_empty() {
            return Ok(report);
        }

        let ids: Vec<Uuid> = instances.iter().map(|instance| instance.id).collect();
        let since = engine::window_start(now, self.policy.window);
        let mut windows = self.store.windows(&ids, since, now).await?;

        for instance in instances {
            let Some(samples) = windows.remove(&instance.id) else {
                continue;
            };
            let newest = samples.iter().map(|s| s.sample.timestamp()).max();
            if !newest.is_some_and(|newest| instance.scale.has_new_data(newest)) {
                continue;
            }
            match self.decide(instance, &samples, now).await {
                Ok(applied) => {
                    report.evaluated += 1;
                    report.applied += usize::from(applied);
                }
                Err(store::Error::Conflict { .. }) => {
                    debug!(instance_id = %instance.instance_id, "evaluation superseded by a concurrent one");
                }
                Err(cause) => {
                    report.failed += 1;
                    error!(instance_id = %instance.instance_id, %cause, "recording decision failed");
                }
            }
        }
        Ok(report)
    }

    /// Evaluates and records one instance; returns whether a scaling action was applied.
    async fn decide(
        &self,
        instance: &Instance,
        samples: &[store::StoredSample],
        now: DateTime<Utc>,
    ) -> store::Result<bool> {
        let record =
            NewDecisionRecord::evaluate(&self.policy, instance.id, samples, instance.scale, now);
        let stored = self.store.record_evaluation(record).await?;
        if stored.applied() {
            info!(
                instance_id = %instance.instance_id,
                decision = %stored.decision,
                from_level = stored.level_before,
                to_level = stored.level_after,
                reason = %stored.reason,
                "scaling action applied"
            );
        } else {
            debug!(
                instance_id = %instance.instance_id,
                decision = %stored.decision,
                blocked_by = stored.blocked_by().map(|b| b.as_str()),
                "decision recorded"
            );
        }
        Ok(stored.applied())
    }

    /// Deletes samples and decisions older than the retention period, if one is set.
    ///
    /// Deletes in batches of [`SchedulerConfig::purge_batch`] rows per table, one store call per
    /// batch, until a call finds nothing left, so that one tick clears any backlog while no
    /// single call holds the store for long.
    ///
    /// # Errors
    ///
    /// Returns the store's error; rows deleted by earlier batches stay deleted.
    pub async fn purge_tick(&self) -> store::Result<usize> {
        let Some(retention) = self.config.retention else {
            return Ok(0);
        };
        let age = TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
        let cutoff = self
            .clock
            .now()
            .checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut deleted = 0;
        let mut batches = 0;
        loop {
            let batch = self
                .store
                .purge_before(cutoff, self.config.purge_batch)
                .await?;
            if batch == 0 {
                break;
            }
            deleted += batch;
            batches += 1;
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            info!(deleted, batches, %cutoff, "deleted old samples and decisions");
        }
        Ok(deleted)
    }

    /// Claims instances, logs a change in their number, and returns them together with the
    /// ones the previous claim did not return.
    async fn claim_and_track(
        &self,
        now: DateTime<Utc>,
    ) -> store::Result<(Vec<Instance>, Vec<Instance>)> {
        let instances = self
            .store
            .claim_monitored(self.config.holder, self.config.lease, now)
            .await?;
        let current: HashSet<Uuid> = instances.iter().map(|instance| instance.id).collect();
        let previous = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *held, current)
        };
        if previous.len() != instances.len() {
            info!(
                replica_id = %self.config.holder,
                held = instances.len(),
                previous = previous.len(),
                "number of held instances changed"
            );
        }
        let acquired = instances
            .iter()
            .filter(|instance| !previous.contains(&instance.id))
            .cloned()
            .collect();
        Ok((instances, acquired))
    }

    /// Runs the ticks until `shutdown` is cancelled, then returns after the current ticks end.
    ///
    /// A tick that fails is logged and the next one runs on schedule.
    ///
    /// # Panics
    ///
    /// Panics when a period in [`SchedulerConfig`] is zero, as [`tokio::time::interval`] does.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        info!(
            collect_every = ?self.config.collect_every,
            decide_every = ?self.config.decide_every,
            "scheduler started"
        );
        let collect = self.repeat(
            "collection",
            self.config.collect_every,
            &shutdown,
            || async { self.collect_tick().await.map(|_| ()) },
        );
        let decide = self.repeat("decision", self.config.decide_every, &shutdown, || async {
            self.decide_tick().await.map(|_| ())
        });
        let purge = self.repeat("retention", self.config.purge_every, &shutdown, || async {
            self.purge_tick().await.map(|_| ())
        });
        tokio::join!(collect, decide, purge);
        // Other replicas can take the instances at once instead of after the lease ends.
        match self.store.release_claims(self.config.holder).await {
            Ok(()) => debug!(replica_id = %self.config.holder, "claims released"),
            Err(cause) => warn!(
                replica_id = %self.config.holder,
                %cause,
                "releasing claims failed; other replicas take the instances when the leases end"
            ),
        }
        info!("scheduler stopped");
    }

    async fn repeat<F, Fut>(
        &self,
        name: &str,
        every: Duration,
        shutdown: &CancellationToken,
        tick: F,
    ) where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = store::Result<()>>,
    {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(cause) = tick().await {
                error!(tick = name, %cause, "tick failed; retrying next period");
            }
        }
    }
}
