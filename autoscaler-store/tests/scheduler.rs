//! The scheduler's ticks on a real redb store with the seeded mock collector, driven by a
//! manual clock (or tokio's paused clock for `run`), so no test sleeps in real time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use autoscaler_core::capacity::Block;
use autoscaler_core::capacity_percent;
use autoscaler_core::clock::{Clock, ManualClock};
use autoscaler_core::collector::{CollectError, Collected, Collector, MockCollector};
use autoscaler_core::engine::Rule;
use autoscaler_core::model::{Decision, Sample};
use autoscaler_core::policy::Policy;
use autoscaler_core::scheduler::{Scheduler, SchedulerConfig};
use autoscaler_core::store::{
    self, CollectionError, DecisionRecord, Instance, NewDecisionRecord, NewInstance, NewUser,
    Store, StoredSample, User,
};
use autoscaler_store::RedbStore;
use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// 2026-03-01T12:00:00Z, where every manual clock starts.
fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_366_400, 0).expect("valid time")
}

fn open(path: &Path) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(path).expect("open the database file"))
}

async fn register(store: &dyn Store, owner: &User, instance_id: &str, monitored: bool) -> Instance {
    store
        .create_instance(NewInstance {
            owner_id: owner.id,
            instance_id: instance_id.into(),
            instance_type: "t2.micro".into(),
            region: "mock".into(),
            is_mock: true,
        })
        .await
        .expect("create_instance");
    if monitored {
        store
            .set_monitoring(instance_id, true)
            .await
            .expect("set_monitoring");
    }
    reload(store, instance_id).await
}

async fn owner(store: &dyn Store) -> User {
    store
        .create_user(NewUser {
            email: "ops@example.com".into(),
            password_hash: "hash".into(),
        })
        .await
        .expect("create_user")
}

async fn reload(store: &dyn Store, instance_id: &str) -> Instance {
    store
        .instance(instance_id)
        .await
        .expect("instance")
        .expect("the instance exists")
}

async fn samples(store: &dyn Store, instance: &Instance) -> Vec<StoredSample> {
    store
        .recent_samples(instance.id, 1000)
        .await
        .expect("recent_samples")
}

/// Returns the instance's decision records, oldest first.
async fn decisions(store: &dyn Store, instance: &Instance) -> Vec<DecisionRecord> {
    let mut records = store
        .recent_decisions(instance.id, 1000)
        .await
        .expect("recent_decisions");
    records.reverse();
    records
}

fn scheduler(
    store: Arc<dyn Store>,
    collector: Arc<dyn Collector>,
    clock: Arc<dyn Clock>,
) -> Scheduler {
    Scheduler::new(
        store,
        collector,
        clock,
        Policy::default(),
        SchedulerConfig::default(),
    )
}

/// Stores a prolonged simulation: `minutes` of samples at `cpu` percent, 30 s apart, backdated
/// so that the last one is at `end`.
async fn simulate(
    store: &dyn Store,
    instance: &Instance,
    end: DateTime<Utc>,
    minutes: i64,
    cpu: f64,
) {
    let count = minutes * 60 / 30;
    let batch: Vec<(Uuid, Sample)> = (0..count)
        .map(|i| {
            let at = end - TimeDelta::seconds(30 * (count - 1 - i));
            let sample =
                Sample::new(at, cpu, Some(50.0), 2_000_000.0, 1_000_000.0).expect("valid sample");
            (instance.id, sample)
        })
        .collect();
    let added = store.append_samples(&batch).await.expect("append_samples");
    assert_eq!(added as i64, count, "every simulated sample is new");
}

#[tokio::test]
async fn collection_tick_samples_monitored_instances() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let first = register(store.as_ref(), &user, "mock-1", true).await;
    let second = register(store.as_ref(), &user, "mock-2", true).await;
    let clock = Arc::new(ManualClock::new(start()));
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(7)),
        clock.clone(),
    );

    for tick in 0..3 {
        let report = ticks.collect_tick().await.expect("collect_tick");
        assert_eq!(report.instances, 2, "tick {tick}");
        assert_eq!(
            report.samples, 2,
            "tick {tick}: one sample per monitored instance"
        );
        assert_eq!(report.failed, 0, "tick {tick}");
        clock.advance(TimeDelta::seconds(30));
    }

    for instance in [&first, &second] {
        let stored = samples(store.as_ref(), instance).await;
        let times: Vec<_> = stored.iter().map(|s| s.sample.timestamp()).collect();
        let expected: Vec<_> = [60, 30, 0]
            .iter()
            .map(|&s| start() + TimeDelta::seconds(s))
            .collect();
        assert_eq!(
            times, expected,
            "{}: one sample per tick at the tick's time",
            instance.instance_id
        );
        for s in &stored {
            let sample = s.sample;
            assert!(
                (40.0..=50.0).contains(&sample.cpu_utilization()),
                "{sample:?}"
            );
            let memory = sample.memory_usage().expect("mock samples carry memory");
            assert!((40.0..=50.0).contains(&memory), "{sample:?}");
            let network_in = sample.network_in().expect("mock samples carry network in");
            assert!(
                (500_000.0..=5_000_000.0).contains(&network_in),
                "{sample:?}"
            );
            let network_out = sample
                .network_out()
                .expect("mock samples carry network out");
            assert!(
                (250_000.0..=2_500_000.0).contains(&network_out),
                "{sample:?}"
            );
        }
    }
}

#[tokio::test]
async fn spike_scales_up_once_then_cooldown() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let instance = register(store.as_ref(), &user, "mock-spike", true).await;
    let clock = Arc::new(ManualClock::new(start()));
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(11)),
        clock.clone(),
    );
    let policy = ticks.policy().clone();

    simulate(store.as_ref(), &instance, start(), 10, 95.0).await;
    let report = ticks.decide_tick().await.expect("decide_tick");
    assert_eq!((report.evaluated, report.applied), (1, 1));
    let scaled = reload(store.as_ref(), "mock-spike").await;
    assert_eq!(scaled.scale.level, 2);
    assert_eq!(
        capacity_percent(scaled.scale.level, policy.step_factor),
        150.0
    );
    let first = decisions(store.as_ref(), &instance).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].decision, Decision::ScaleUp);
    assert_eq!(first[0].rule, Rule::SustainedHigh);
    assert_eq!(
        first[0].reason,
        "Sustained scale up: CPU > 90% for 100.0% of last 5 minutes (Current: 95.00%)"
    );

    let again = ticks.decide_tick().await.expect("decide_tick");
    assert_eq!(
        again.evaluated, 0,
        "a decision tick without new samples decides nothing"
    );

    // Ten more minutes of mock samples, each collection tick followed by two decision ticks.
    for _ in 0..20 {
        clock.advance(TimeDelta::seconds(15));
        ticks.collect_tick().await.expect("collect_tick");
        ticks.decide_tick().await.expect("decide_tick");
        clock.advance(TimeDelta::seconds(15));
        ticks.decide_tick().await.expect("decide_tick");
    }

    let records = decisions(store.as_ref(), &instance).await;
    assert_eq!(records.len(), 21, "one record per new sample");
    let applied: Vec<_> = records.iter().filter(|r| r.applied()).collect();
    assert_eq!(applied.len(), 1, "exactly one applied action: {applied:?}");
    assert_eq!(applied[0].decision, Decision::ScaleUp);

    let until = first[0].evaluated_at + TimeDelta::minutes(5);
    let during_cooldown: Vec<_> = records[1..]
        .iter()
        .filter(|r| r.evaluated_at < until)
        .collect();
    assert!(!during_cooldown.is_empty());
    let blocked: Vec<_> = during_cooldown
        .iter()
        .filter(|r| r.decision != Decision::NoAction)
        .collect();
    assert_eq!(
        blocked[0].decision,
        Decision::ScaleUp,
        "the next sample still sees the spike: {:?}",
        blocked[0]
    );
    for record in &blocked {
        assert_eq!(
            record.blocked_by(),
            Some(Block::Cooldown { until }),
            "a scaling decision during the cooldown is blocked: {record:?}"
        );
    }
    let scaled = reload(store.as_ref(), "mock-spike").await;
    assert_eq!(scaled.scale.level, 2, "the level stays at 2");
}

#[tokio::test]
async fn unmonitored_instances_left_alone() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let watched = register(store.as_ref(), &user, "mock-watched", true).await;
    let idle = register(store.as_ref(), &user, "mock-idle", false).await;
    let stopped = register(store.as_ref(), &user, "mock-stopped", true).await;
    let clock = Arc::new(ManualClock::new(start()));
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(3)),
        clock.clone(),
    );
    for instance in [&watched, &idle, &stopped] {
        simulate(store.as_ref(), instance, start(), 10, 95.0).await;
    }
    store
        .set_monitoring("mock-stopped", false)
        .await
        .expect("set_monitoring off");

    clock.advance(TimeDelta::seconds(30));
    let collected = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!(collected.instances, 1);
    let decided = ticks.decide_tick().await.expect("decide_tick");
    assert_eq!((decided.instances, decided.evaluated), (1, 1));

    assert_eq!(samples(store.as_ref(), &watched).await.len(), 21);
    assert_eq!(reload(store.as_ref(), "mock-watched").await.scale.level, 2);
    for instance in [&idle, &stopped] {
        let name = &instance.instance_id;
        assert_eq!(
            samples(store.as_ref(), instance).await.len(),
            20,
            "{name} gets no sample"
        );
        assert!(
            decisions(store.as_ref(), instance).await.is_empty(),
            "{name} gets no decision"
        );
        assert_eq!(
            reload(store.as_ref(), name).await.scale.level,
            1,
            "{name} keeps its level"
        );
    }
}

/// The mock collector, except that it fails for one instance while `failing` is set.
struct FlakyCollector {
    mock: MockCollector,
    broken: String,
    failing: AtomicBool,
}

#[async_trait]
impl Collector for FlakyCollector {
    async fn collect(&self, instances: &[Instance], now: DateTime<Utc>) -> Vec<Collected> {
        let mut collected = self.mock.collect(instances, now).await;
        if self.failing.load(Ordering::SeqCst) {
            for entry in &mut collected {
                let instance = instances.iter().find(|i| i.id == entry.instance);
                if let Some(instance) = instance.filter(|i| i.instance_id == self.broken) {
                    entry.result = Err(CollectError::Source {
                        instance_id: instance.instance_id.clone(),
                        message: "Throttling: rate exceeded".into(),
                    });
                }
            }
        }
        collected
    }
}

#[tokio::test]
async fn collector_failure_spares_others() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let healthy = register(store.as_ref(), &user, "mock-healthy", true).await;
    let broken = register(store.as_ref(), &user, "mock-broken", true).await;
    let collector = Arc::new(FlakyCollector {
        mock: MockCollector::seeded(5),
        broken: "mock-broken".into(),
        failing: AtomicBool::new(true),
    });
    let clock = Arc::new(ManualClock::new(start()));
    let ticks = scheduler(Arc::clone(&store), collector.clone(), clock.clone());

    let report = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!((report.samples, report.failed), (1, 1));
    assert_eq!(samples(store.as_ref(), &healthy).await.len(), 1);
    assert!(samples(store.as_ref(), &broken).await.is_empty());
    let error = reload(store.as_ref(), "mock-broken")
        .await
        .last_collection_error
        .expect("the failure is recorded on the instance");
    assert!(error.message.contains("Throttling"), "{error:?}");
    assert_eq!(error.at, start());
    assert_eq!(
        reload(store.as_ref(), "mock-healthy")
            .await
            .last_collection_error,
        None
    );

    collector.failing.store(false, Ordering::SeqCst);
    clock.advance(TimeDelta::seconds(30));
    let report = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!((report.samples, report.failed), (2, 0));
    let recovered = reload(store.as_ref(), "mock-broken").await;
    assert_eq!(
        recovered.last_collection_error, None,
        "a good collection clears the error"
    );
}

/// A redb store that fails appends and evaluations naming the `broken` instance, and counts
/// the batched calls the ticks make.
struct FaultyStore {
    inner: RedbStore,
    broken: Mutex<Option<Uuid>>,
    appends: AtomicUsize,
    window_reads: AtomicUsize,
}

impl FaultyStore {
    fn open(path: &Path) -> FaultyStore {
        FaultyStore {
            inner: RedbStore::open(path).expect("open the database file"),
            broken: Mutex::new(None),
            appends: AtomicUsize::new(0),
            window_reads: AtomicUsize::new(0),
        }
    }

    fn check(&self, instance: Uuid) -> store::Result<()> {
        let broken = *self.broken.lock().expect("lock");
        if broken == Some(instance) {
            return Err(store::Error::Unavailable {
                message: format!("injected failure for instance {instance}"),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn create_user(&self, user: NewUser) -> store::Result<User> {
        self.inner.create_user(user).await
    }
    async fn user_by_email(&self, email: &str) -> store::Result<Option<User>> {
        self.inner.user_by_email(email).await
    }
    async fn user(&self, id: Uuid) -> store::Result<Option<User>> {
        self.inner.user(id).await
    }
    async fn create_instance(&self, instance: NewInstance) -> store::Result<Instance> {
        self.inner.create_instance(instance).await
    }
    async fn instance(&self, instance_id: &str) -> store::Result<Option<Instance>> {
        self.inner.instance(instance_id).await
    }
    async fn instances_by_owner(&self, owner_id: Uuid) -> store::Result<Vec<Instance>> {
        self.inner.instances_by_owner(owner_id).await
    }
    async fn set_monitoring(&self, instance_id: &str, monitoring: bool) -> store::Result<Instance> {
        self.inner.set_monitoring(instance_id, monitoring).await
    }
    async fn monitored_instances(&self) -> store::Result<Vec<Instance>> {
        self.inner.monitored_instances().await
    }
    async fn set_collection_error(
        &self,
        id: Uuid,
        error: Option<CollectionError>,
    ) -> store::Result<()> {
        self.inner.set_collection_error(id, error).await
    }
    async fn append_samples(&self, batch: &[(Uuid, Sample)]) -> store::Result<usize> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        for (id, _) in batch {
            self.check(*id)?;
        }
        self.inner.append_samples(batch).await
    }
    async fn windows(
        &self,
        instances: &[Uuid],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> store::Result<HashMap<Uuid, Vec<StoredSample>>> {
        self.window_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.windows(instances, since, until).await
    }
    async fn recent_samples(
        &self,
        instance: Uuid,
        limit: usize,
    ) -> store::Result<Vec<StoredSample>> {
        self.inner.recent_samples(instance, limit).await
    }
    async fn record_evaluation(&self, record: NewDecisionRecord) -> store::Result<DecisionRecord> {
        self.check(record.instance)?;
        self.inner.record_evaluation(record).await
    }
    async fn recent_decisions(
        &self,
        instance: Uuid,
        limit: usize,
    ) -> store::Result<Vec<DecisionRecord>> {
        self.inner.recent_decisions(instance, limit).await
    }
}

#[tokio::test]
async fn store_failure_spares_others() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let faulty = Arc::new(FaultyStore::open(&dir.path().join("autoscaler.redb")));
    let store: Arc<dyn Store> = faulty.clone();
    let user = owner(store.as_ref()).await;
    let mut instances = Vec::new();
    for name in ["mock-a", "mock-b", "mock-c"] {
        instances.push(register(store.as_ref(), &user, name, true).await);
    }
    let broken = instances[1].clone();
    *faulty.broken.lock().expect("lock") = Some(broken.id);
    let clock = Arc::new(ManualClock::new(start()));
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(9)),
        clock,
    );

    let collected = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!((collected.samples, collected.failed), (2, 1));
    assert_eq!(
        faulty.appends.load(Ordering::SeqCst),
        4,
        "one batched append, then one per instance after it failed"
    );
    for instance in &instances {
        let expected = usize::from(instance.id != broken.id);
        let stored = samples(store.as_ref(), instance).await.len();
        assert_eq!(stored, expected, "{}", instance.instance_id);
    }

    // Give the broken instance samples, so that its evaluation runs and fails at the store.
    *faulty.broken.lock().expect("lock") = None;
    simulate(store.as_ref(), &broken, start(), 1, 45.0).await;
    *faulty.broken.lock().expect("lock") = Some(broken.id);
    let decided = ticks.decide_tick().await.expect("decide_tick");
    assert_eq!((decided.evaluated, decided.failed), (2, 1));
    // The collection tick read the windows of the instances it had just claimed.
    assert_eq!(
        faulty.window_reads.load(Ordering::SeqCst),
        2,
        "one window read per tick"
    );
    for instance in &instances {
        let expected = usize::from(instance.id != broken.id);
        let recorded = decisions(store.as_ref(), instance).await.len();
        assert_eq!(recorded, expected, "{}", instance.instance_id);
    }
}

#[tokio::test]
async fn ticks_batch_store_calls() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let faulty = Arc::new(FaultyStore::open(&dir.path().join("autoscaler.redb")));
    let store: Arc<dyn Store> = faulty.clone();
    let user = owner(store.as_ref()).await;
    for i in 0..25 {
        register(store.as_ref(), &user, &format!("mock-{i}"), true).await;
    }
    let clock = Arc::new(ManualClock::new(start()));
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(1)),
        clock,
    );

    let collected = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!(collected.samples, 25);
    assert_eq!(
        faulty.appends.load(Ordering::SeqCst),
        1,
        "one append for 25 instances"
    );
    // The first collection tick claims all 25 and decides them before collecting.
    assert_eq!(
        faulty.window_reads.load(Ordering::SeqCst),
        1,
        "one window read for 25 newly claimed instances"
    );
    let decided = ticks.decide_tick().await.expect("decide_tick");
    assert_eq!(decided.evaluated, 25);
    assert_eq!(
        faulty.window_reads.load(Ordering::SeqCst),
        2,
        "one window read for 25 instances"
    );
}

/// A sample stored before this process claimed the instance, as one that a replica collected
/// and did not decide before it stopped, is evaluated before a newer sample is collected.
#[tokio::test]
async fn claimed_instance_decided_before_collection() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let instance = register(store.as_ref(), &user, "mock-handover", true).await;
    register(store.as_ref(), &user, "mock-idle", false).await;
    simulate(store.as_ref(), &instance, start(), 3, 45.0).await;
    let clock = Arc::new(ManualClock::new(start() + TimeDelta::seconds(5)));
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(5)),
        clock.clone(),
    );
    assert_eq!(ticks.held_instances(), 0);

    let collected = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!(collected.evaluated, 1);
    assert_eq!(collected.samples, 1);
    assert_eq!(ticks.held_instances(), 1);
    let records = decisions(store.as_ref(), &instance).await;
    assert_eq!(records.len(), 1);
    let decided_on = records[0].sample().map(Sample::timestamp);
    assert_eq!(
        decided_on,
        Some(start()),
        "the sample stored before the claim"
    );

    // The instance is held now, so the next collection tick only collects.
    clock.advance(TimeDelta::seconds(30));
    let again = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!(again.evaluated, 0);
    assert_eq!(again.samples, 1);
}

#[tokio::test]
async fn restart_resumes_monitoring() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("autoscaler.redb");
    let clock = Arc::new(ManualClock::new(start()));
    let instance = {
        let store = open(&path);
        let user = owner(store.as_ref()).await;
        let instance = register(store.as_ref(), &user, "mock-restart", true).await;
        simulate(store.as_ref(), &instance, start(), 10, 95.0).await;
        let ticks = scheduler(
            Arc::clone(&store),
            Arc::new(MockCollector::seeded(2)),
            clock.clone(),
        );
        let decided = ticks.decide_tick().await.expect("decide_tick");
        assert_eq!(decided.applied, 1);
        instance
    };

    // The first scheduler and store are gone; the file is opened again, as after a restart.
    let store = open(&path);
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(4)),
        clock.clone(),
    );
    clock.advance(TimeDelta::seconds(30));
    let collected = ticks.collect_tick().await.expect("collect_tick");
    assert_eq!(
        collected.samples, 1,
        "the instance is still monitored after the restart"
    );
    let decided = ticks.decide_tick().await.expect("decide_tick");
    assert_eq!(decided.evaluated, 1);

    let records = decisions(store.as_ref(), &instance).await;
    assert_eq!(records.len(), 2);
    let until = start() + TimeDelta::minutes(5);
    assert_eq!(
        records[1].blocked_by(),
        Some(Block::Cooldown { until }),
        "the cooldown survives the restart: {:?}",
        records[1]
    );
    assert_eq!(reload(store.as_ref(), "mock-restart").await.scale.level, 2);
}

/// Reads time from tokio's clock, so that paused time in a test moves the scheduler's clock.
struct TokioClock {
    origin: tokio::time::Instant,
    start: DateTime<Utc>,
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.origin.elapsed()).expect("elapsed time fits");
        self.start + elapsed
    }
}

#[tokio::test(start_paused = true)]
async fn run_stops_on_cancel() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let instance = register(store.as_ref(), &user, "mock-run", true).await;
    let clock = Arc::new(TokioClock {
        origin: tokio::time::Instant::now(),
        start: start(),
    });
    let config = SchedulerConfig {
        collect_every: Duration::from_secs(20),
        decide_every: Duration::from_secs(10),
        ..SchedulerConfig::default()
    };
    let ticks = Arc::new(Scheduler::new(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(8)),
        clock,
        Policy::default(),
        config,
    ));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(Arc::clone(&ticks).run(shutdown.clone()));

    // Collection ticks at 0, 20, 40 and 60 s; the decision ticks every 10 s between them.
    tokio::time::sleep(Duration::from_secs(65)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("run returns soon after the token is cancelled")
        .expect("run does not panic");

    let stored = samples(store.as_ref(), &instance).await;
    let times: Vec<_> = stored.iter().map(|s| s.sample.timestamp()).collect();
    let expected: Vec<_> = [60, 40, 20, 0]
        .iter()
        .map(|&s| start() + TimeDelta::seconds(s))
        .collect();
    assert_eq!(times, expected, "one sample per collection tick");
    let records = decisions(store.as_ref(), &instance).await;
    assert!(
        (3..=4).contains(&records.len()),
        "each new sample is decided once: {records:?}"
    );

    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        samples(store.as_ref(), &instance).await.len(),
        4,
        "no tick after shutdown"
    );
    assert_eq!(
        decisions(store.as_ref(), &instance).await.len(),
        records.len()
    );
}

#[tokio::test]
async fn retention_tick_clears_backlog() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let instance = register(store.as_ref(), &user, "mock-old", true).await;
    // Two hours of samples, 30 s apart, ending now: 240 samples, of which 119 are more than an
    // hour old. The one exactly an hour old is not older than the cutoff, so it stays.
    simulate(store.as_ref(), &instance, start(), 120, 45.0).await;
    let clock = Arc::new(ManualClock::new(start()));
    let config = SchedulerConfig {
        retention: Some(Duration::from_secs(3600)),
        purge_batch: 7,
        ..SchedulerConfig::default()
    };
    let ticks = Scheduler::new(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(6)),
        clock,
        Policy::default(),
        config,
    );

    let deleted = ticks.purge_tick().await.expect("purge_tick");
    assert_eq!(
        deleted, 119,
        "one tick deletes every old sample, batch after batch"
    );
    let kept = samples(store.as_ref(), &instance).await;
    assert_eq!(kept.len(), 121);
    let cutoff = start() - TimeDelta::hours(1);
    assert!(kept.iter().all(|s| s.sample.timestamp() >= cutoff));
    assert_eq!(
        ticks.purge_tick().await.expect("purge_tick"),
        0,
        "nothing is left to delete"
    );
}

#[tokio::test]
async fn retention_off_keeps_everything() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("autoscaler.redb"));
    let user = owner(store.as_ref()).await;
    let instance = register(store.as_ref(), &user, "mock-kept", true).await;
    simulate(store.as_ref(), &instance, start(), 120, 45.0).await;
    let clock = Arc::new(ManualClock::new(start() + TimeDelta::days(30)));
    let ticks = scheduler(
        Arc::clone(&store),
        Arc::new(MockCollector::seeded(6)),
        clock,
    );

    assert_eq!(ticks.purge_tick().await.expect("purge_tick"), 0);
    assert_eq!(samples(store.as_ref(), &instance).await.len(), 240);
}
