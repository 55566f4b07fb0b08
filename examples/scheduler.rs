//! Runs the scheduler on an embedded redb store with three mock instances for twenty simulated
//! minutes, drives one of them to 95 % CPU for ten of those minutes, and prints the decisions
//! with their reasons.
//!
//! ```sh
//! cargo run -p autoscaler-examples --example scheduler
//! ```
//!
//! Time comes from a manual clock that the program moves by 15 s per step, so twenty minutes of
//! ticks take a few seconds. The database is a file in a temporary directory, deleted on exit.

use std::error::Error;
use std::sync::Arc;

use async_trait::async_trait;
use autoscaler_core::capacity_percent;
use autoscaler_core::clock::ManualClock;
use autoscaler_core::collector::{Collected, Collector, MockCollector};
use autoscaler_core::model::{Decision, Sample};
use autoscaler_core::policy::Policy;
use autoscaler_core::scheduler::{Scheduler, SchedulerConfig};
use autoscaler_core::store::{DecisionRecord, Instance, NewInstance, NewUser, Store};
use autoscaler_store::RedbStore;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Simulated run time, in steps of 15 s: 20 minutes.
const STEPS: i64 = 80;
/// The instance that gets the load spike.
const SPIKED: &str = "mock-web";
/// The spike lasts from minute 3 to minute 13.
const SPIKE_MINUTES: std::ops::Range<i64> = 3..13;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("autoscaler.redb");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&path)?);
    println!("database: {}", path.display());

    let instances = register_instances(store.as_ref()).await?;
    let start = Utc::now().duration_trunc(TimeDelta::seconds(1))?;
    let clock = Arc::new(ManualClock::new(start));
    let collector = SpikeCollector {
        mock: MockCollector::seeded(42),
        from: start + TimeDelta::minutes(SPIKE_MINUTES.start),
        until: start + TimeDelta::minutes(SPIKE_MINUTES.end),
    };
    let scheduler = Scheduler::new(
        Arc::clone(&store),
        Arc::new(collector),
        clock.clone(),
        Policy::default(),
        SchedulerConfig::default(),
    );

    for step in 0..STEPS {
        // A collection every 30 s and a decision every 15 s, the defaults of `SchedulerConfig`.
        if step % 2 == 0 {
            scheduler.collect_tick().await?;
        }
        scheduler.decide_tick().await?;
        clock.advance(TimeDelta::seconds(15));
    }

    println!(
        "{SPIKED} runs at 95 % CPU from minute {} to minute {}; times are minutes:seconds \
         since the start",
        SPIKE_MINUTES.start, SPIKE_MINUTES.end
    );
    for instance in &instances {
        print_decisions(store.as_ref(), instance, start, scheduler.policy()).await?;
    }
    Ok(())
}

/// The mock collector, except that the instance [`SPIKED`] reports 95 % CPU in `from..until`.
struct SpikeCollector {
    mock: MockCollector,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

#[async_trait]
impl Collector for SpikeCollector {
    async fn collect(&self, instances: &[Instance], now: DateTime<Utc>) -> Vec<Collected> {
        let mut collected = self.mock.collect(instances, now).await;
        if !(self.from..self.until).contains(&now) {
            return collected;
        }
        let spiked = instances.iter().find(|i| i.instance_id == SPIKED);
        for entry in &mut collected {
            if spiked.is_some_and(|i| i.id == entry.instance) {
                entry.result = Sample::new(now, 95.0, Some(60.0), 3_000_000.0, 1_500_000.0)
                    .map(|sample| vec![sample])
                    .map_err(|invalid| autoscaler_core::CollectError::Source {
                        instance_id: SPIKED.into(),
                        message: invalid.to_string(),
                    });
            }
        }
        collected
    }
}

async fn register_instances(store: &dyn Store) -> Result<Vec<Instance>, Box<dyn Error>> {
    let owner = store
        .create_user(NewUser {
            email: "ops@example.com".into(),
            password_hash: "not a real hash".into(),
        })
        .await?;
    let mut instances = Vec::new();
    for (name, instance_type) in [
        (SPIKED, "t3.small"),
        ("mock-api", "t3.medium"),
        ("mock-db", "m5.large"),
    ] {
        store
            .create_instance(NewInstance {
                owner_id: owner.id,
                instance_id: name.into(),
                instance_type: instance_type.into(),
                region: "mock".into(),
                is_mock: true,
            })
            .await?;
        instances.push(store.set_monitoring(name, true).await?);
    }
    Ok(instances)
}

/// Prints the scaling decisions of `instance`, oldest first, and how many `no_action` ones
/// there were between them.
async fn print_decisions(
    store: &dyn Store,
    instance: &Instance,
    start: DateTime<Utc>,
    policy: &Policy,
) -> Result<(), Box<dyn Error>> {
    let mut records: Vec<DecisionRecord> = store.recent_decisions(instance.id, 1000).await?;
    records.reverse();
    println!();
    println!("{} ({} evaluations)", instance.instance_id, records.len());

    let mut quiet = 0;
    for record in &records {
        if record.decision == Decision::NoAction {
            quiet += 1;
            continue;
        }
        if quiet > 0 {
            println!("  ({quiet} x no_action)");
            quiet = 0;
        }
        println!(
            "  {}  {:<10}  {:<22}  {}",
            offset(start, record.evaluated_at),
            record.decision.as_str(),
            outcome(record),
            record.reason
        );
    }
    if quiet > 0 {
        println!("  ({quiet} x no_action)");
    }

    let level = store
        .instance(&instance.instance_id)
        .await?
        .ok_or("the instance vanished from the store")?
        .scale
        .level;
    let capacity = capacity_percent(level, policy.step_factor);
    println!("  final: level {level}, capacity {capacity:.1} %");
    Ok(())
}

/// Describes what applying the decision did.
fn outcome(record: &DecisionRecord) -> String {
    if record.applied() {
        return format!("level {} -> {}", record.level_before, record.level_after);
    }
    match record.blocked_by() {
        Some(block) => format!("blocked by {}", block.as_str()),
        None => "unchanged".to_owned(),
    }
}

/// Formats the time since `start` as `mm:ss`.
fn offset(start: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (at - start).num_seconds();
    format!("{:02}:{:02}", seconds / 60, seconds % 60)
}
