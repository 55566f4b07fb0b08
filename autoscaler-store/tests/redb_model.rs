//! Model-based test: random sequences of store operations give the same results on a
//! `RedbStore` file and on a plain in-memory reference model of the `Store` contract.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use autoscaler_core::capacity::{Outcome, ScaleState};
use autoscaler_core::engine::{self, WindowSample};
use autoscaler_core::model::{Decision, Sample};
use autoscaler_core::policy::Policy;
use autoscaler_core::store::{
    CollectionError, DecisionRecord, Error, Instance, NewDecisionRecord, NewInstance, NewUser,
    Store, StoredSample,
};
use autoscaler_store::RedbStore;
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use uuid::Uuid;

/// E-mails, instance ids and sample times come from small pools so that operations collide.
const EMAILS: usize = 3;
const INSTANCE_IDS: usize = 3;
const STEPS: i64 = 14;

fn email(index: usize) -> String {
    format!("user{index}@example.com")
}

fn instance_id(index: usize) -> String {
    format!("mock-{index}")
}

/// 2026-01-01T00:00:00Z plus `step` periods of 30 s.
fn time(step: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("valid time") + TimeDelta::seconds(30 * step)
}

#[derive(Debug, Clone)]
enum Op {
    CreateUser {
        user: usize,
    },
    UserByEmail {
        user: usize,
    },
    CreateInstance {
        instance: usize,
        owner: usize,
    },
    InstancesByOwner {
        owner: usize,
    },
    SetMonitoring {
        instance: usize,
        on: bool,
    },
    Monitored,
    SetCollectionError {
        instance: usize,
        error: Option<i64>,
    },
    Append {
        batch: Vec<(usize, i64, u8)>,
    },
    Windows {
        instances: Vec<usize>,
        since: i64,
        until: i64,
    },
    RecentSamples {
        instance: usize,
        limit: usize,
    },
    Evaluate {
        instance: usize,
        at: i64,
        stale: bool,
    },
    RecentDecisions {
        instance: usize,
        limit: usize,
    },
    Purge {
        before: i64,
        batch: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..EMAILS;
    let instance = 0..INSTANCE_IDS;
    let step = 0..STEPS;
    prop_oneof![
        2 => user.clone().prop_map(|user| Op::CreateUser { user }),
        1 => user.clone().prop_map(|user| Op::UserByEmail { user }),
        3 => (instance.clone(), user.clone())
            .prop_map(|(instance, owner)| Op::CreateInstance { instance, owner }),
        1 => user.prop_map(|owner| Op::InstancesByOwner { owner }),
        2 => (instance.clone(), any::<bool>())
            .prop_map(|(instance, on)| Op::SetMonitoring { instance, on }),
        1 => Just(Op::Monitored),
        1 => (instance.clone(), proptest::option::of(step.clone()))
            .prop_map(|(instance, error)| Op::SetCollectionError { instance, error }),
        8 => proptest::collection::vec((instance.clone(), step.clone(), cpu()), 1..12)
            .prop_map(|batch| Op::Append { batch }),
        2 => (proptest::collection::vec(instance.clone(), 0..4), step.clone(), step.clone())
            .prop_map(|(instances, since, until)| Op::Windows { instances, since, until }),
        2 => (instance.clone(), 0..6usize)
            .prop_map(|(instance, limit)| Op::RecentSamples { instance, limit }),
        5 => (instance.clone(), step.clone(), proptest::bool::weighted(0.15))
            .prop_map(|(instance, at, stale)| Op::Evaluate { instance, at, stale }),
        2 => (instance, 0..6usize)
            .prop_map(|(instance, limit)| Op::RecentDecisions { instance, limit }),
        1 => (step, 1..5usize).prop_map(|(before, batch)| Op::Purge { before, batch }),
        1 => Just(Op::Reopen),
    ]
}

/// Random operations, most often after a setup that registers every user and instance, so
/// that the operations after it reach stored rows rather than unknown keys.
fn sequence() -> impl Strategy<Value = Vec<Op>> {
    let setup = proptest::bool::weighted(0.8);
    (setup, proptest::collection::vec(op(), 1..80)).prop_map(|(setup, ops)| {
        if !setup {
            return ops;
        }
        let users = (0..EMAILS).map(|user| Op::CreateUser { user });
        let instances = (0..INSTANCE_IDS).map(|instance| Op::CreateInstance {
            instance,
            owner: instance % EMAILS,
        });
        users.chain(instances).chain(ops).collect()
    })
}

/// CPU in percent: anywhere, or in the ranges where the sustained rules fire.
fn cpu() -> impl Strategy<Value = u8> {
    prop_oneof![1 => 0..=100u8, 2 => 91..=100u8, 2 => 0..=9u8]
}

/// The kind of a failed operation; messages may differ between the store and the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NotFound,
    Conflict,
}

fn failure(error: Error) -> Failure {
    match error {
        Error::NotFound { .. } => Failure::NotFound,
        Error::Conflict { .. } => Failure::Conflict,
        other => panic!("the store failed outside the contract: {other}"),
    }
}

/// An instance as both sides report it, with ids replaced by names.
#[derive(Debug, Clone, PartialEq)]
struct InstanceView {
    instance_id: String,
    owner: String,
    is_monitoring: bool,
    scale: ScaleState,
    last_collection_error: Option<CollectionError>,
}

/// A sample as both sides report it.
#[derive(Debug, Clone, PartialEq)]
struct SampleView {
    instance_id: String,
    sample: Sample,
    outlier_type: Option<Decision>,
}

/// A decision record as both sides report it.
#[derive(Debug, Clone, PartialEq)]
struct DecisionView {
    instance_id: String,
    evaluated_at: DateTime<Utc>,
    decision: Decision,
    outcome: Outcome,
    levels: (u32, u32),
    reason: String,
}

/// The result of one operation, comparable between the store and the model.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    Done(Result<(), Failure>),
    User(Result<Option<String>, Failure>),
    Instance(Result<InstanceView, Failure>),
    Instances(Vec<InstanceView>),
    Count(Result<usize, Failure>),
    Windows(BTreeMap<String, Vec<SampleView>>),
    Samples(Vec<SampleView>),
    Decision(Result<DecisionView, Failure>),
    Decisions(Vec<DecisionView>),
}

/// Ids the store handed out, so its results can be turned into names.
#[derive(Default)]
struct Names {
    users: HashMap<Uuid, String>,
    user_ids: HashMap<String, Uuid>,
    instances: HashMap<Uuid, String>,
    instance_ids: HashMap<String, Uuid>,
    /// Ids for names that were never created, so operations on them name an unknown key.
    unknown: HashMap<String, Uuid>,
}

impl Names {
    fn user(&mut self, name: &str) -> Uuid {
        match self.user_ids.get(name) {
            Some(&id) => id,
            None => *self
                .unknown
                .entry(name.to_owned())
                .or_insert_with(Uuid::new_v4),
        }
    }

    fn instance(&mut self, name: &str) -> Uuid {
        match self.instance_ids.get(name) {
            Some(&id) => id,
            None => *self
                .unknown
                .entry(name.to_owned())
                .or_insert_with(Uuid::new_v4),
        }
    }

    fn view(&self, instance: &Instance) -> InstanceView {
        InstanceView {
            instance_id: instance.instance_id.clone(),
            owner: self.users[&instance.owner_id].clone(),
            is_monitoring: instance.is_monitoring,
            scale: instance.scale,
            last_collection_error: instance.last_collection_error.clone(),
        }
    }

    fn sample(&self, stored: &StoredSample) -> SampleView {
        SampleView {
            instance_id: self.instances[&stored.instance].clone(),
            sample: stored.sample,
            outlier_type: stored.outlier_type,
        }
    }

    fn decision(&self, record: &DecisionRecord) -> DecisionView {
        DecisionView {
            instance_id: self.instances[&record.instance].clone(),
            evaluated_at: record.evaluated_at,
            decision: record.decision,
            outcome: record.outcome,
            levels: (record.level_before, record.level_after),
            reason: record.reason.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct ModelInstance {
    owner: String,
    is_monitoring: bool,
    scale: ScaleState,
    last_collection_error: Option<CollectionError>,
}

/// The reference: the contract of `Store` written with ordered maps and no concurrency.
#[derive(Default)]
struct Model {
    users: BTreeMap<String, ()>,
    /// Instances in registration order.
    instances: Vec<(String, ModelInstance)>,
    /// Keyed by (instance id, time), so iteration is in time order per instance.
    samples: BTreeMap<(String, DateTime<Utc>), (Sample, Option<Decision>)>,
    /// Records in the order they were stored.
    decisions: Vec<DecisionView>,
}

impl Model {
    fn instance(&self, name: &str) -> Option<&ModelInstance> {
        self.instances
            .iter()
            .find(|(id, _)| id == name)
            .map(|(_, i)| i)
    }

    fn instance_mut(&mut self, name: &str) -> Option<&mut ModelInstance> {
        self.instances
            .iter_mut()
            .find(|(id, _)| id == name)
            .map(|(_, i)| i)
    }

    fn view(&self, name: &str) -> Option<InstanceView> {
        self.instance(name).map(|i| InstanceView {
            instance_id: name.to_owned(),
            owner: i.owner.clone(),
            is_monitoring: i.is_monitoring,
            scale: i.scale,
            last_collection_error: i.last_collection_error.clone(),
        })
    }

    fn samples_of(&self, name: &str) -> impl DoubleEndedIterator<Item = SampleView> + '_ {
        let name = name.to_owned();
        self.samples
            .iter()
            .filter(move |((id, _), _)| *id == name)
            .map(|((id, _), (sample, outlier))| SampleView {
                instance_id: id.clone(),
                sample: *sample,
                outlier_type: *outlier,
            })
    }

    fn window(&self, name: &str, since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<SampleView> {
        self.samples_of(name)
            .filter(|s| s.sample.timestamp() > since && s.sample.timestamp() <= until)
            .collect()
    }

    fn append(&mut self, batch: &[(String, Sample)]) -> Result<usize, Failure> {
        if batch.iter().any(|(name, _)| self.instance(name).is_none()) {
            return Err(Failure::NotFound);
        }
        let mut added = 0;
        for (name, sample) in batch {
            let key = (name.clone(), sample.timestamp());
            if let std::collections::btree_map::Entry::Vacant(slot) = self.samples.entry(key) {
                slot.insert((*sample, None));
                added += 1;
            }
        }
        Ok(added)
    }

    fn record(&mut self, name: &str, new: &NewDecisionRecord) -> Result<DecisionView, Failure> {
        let current = self.instance(name).ok_or(Failure::NotFound)?.scale;
        if current != new.expected {
            return Err(Failure::Conflict);
        }
        let record = DecisionRecord::from_new(Uuid::nil(), new);
        let flagged = new
            .evaluation
            .latest()
            .filter(|_| new.evaluation.flags_latest());
        if let Some(latest) = flagged {
            let key = (name.to_owned(), latest.timestamp());
            let stored = self.samples.get_mut(&key).ok_or(Failure::NotFound)?;
            stored.1 = Some(record.decision);
        }
        let view = DecisionView {
            instance_id: name.to_owned(),
            evaluated_at: record.evaluated_at,
            decision: record.decision,
            outcome: record.outcome,
            levels: (record.level_before, record.level_after),
            reason: record.reason,
        };
        self.decisions.push(view.clone());
        if let Some(instance) = self.instance_mut(name) {
            instance.scale = new.next_state();
        }
        Ok(view)
    }

    /// Newest first; ties in time go to the later write, as the store's sequence numbers do.
    fn recent_decisions(&self, name: &str, limit: usize) -> Vec<DecisionView> {
        let mut mine: Vec<(usize, &DecisionView)> = self
            .decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.instance_id == name)
            .collect();
        mine.sort_by_key(|(index, d)| (d.evaluated_at, *index));
        mine.into_iter()
            .rev()
            .take(limit)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Deletes the old rows the store deletes: it visits instances in the order of their ids
    /// as `u128`, then rows in key order, and stops each table at `batch` rows.
    fn purge(&mut self, cutoff: DateTime<Utc>, batch: usize, names: &Names) -> usize {
        let mut order: Vec<(u128, String)> = self
            .instances
            .iter()
            .map(|(name, _)| (names.instance_ids[name].as_u128(), name.clone()))
            .collect();
        order.sort();

        let mut old_samples = Vec::new();
        for (_, name) in &order {
            for (id, at) in self.samples.keys() {
                if id == name && *at < cutoff && old_samples.len() < batch {
                    old_samples.push((id.clone(), *at));
                }
            }
        }
        for key in &old_samples {
            self.samples.remove(key);
        }

        let mut old_decisions = Vec::new();
        for (_, name) in &order {
            let mut mine: Vec<(usize, &DecisionView)> = self
                .decisions
                .iter()
                .enumerate()
                .filter(|(_, d)| d.instance_id == *name && d.evaluated_at < cutoff)
                .collect();
            mine.sort_by_key(|(index, d)| (d.evaluated_at, *index));
            for (index, _) in mine {
                if old_decisions.len() < batch {
                    old_decisions.push(index);
                }
            }
        }
        old_decisions.sort_unstable();
        for index in old_decisions.iter().rev() {
            self.decisions.remove(*index);
        }
        old_samples.len() + old_decisions.len()
    }
}

fn sample_at(step: i64, cpu: u8) -> Sample {
    let cpu = f64::from(cpu);
    Sample::new(time(step), cpu, Some(cpu), 1_000.0 * cpu, 500.0).expect("valid sample")
}

/// Applies `op` to the store and to the model and returns both outputs.
async fn apply(
    op: &Op,
    store: &mut Arc<dyn Store>,
    reopen: &dyn Fn() -> Arc<dyn Store>,
    model: &mut Model,
    names: &mut Names,
) -> (Output, Output) {
    match op {
        Op::CreateUser { user } => {
            let email = email(*user);
            let created = store
                .create_user(NewUser {
                    email: email.clone(),
                    password_hash: "hash".into(),
                })
                .await;
            let real = created.map(|user| {
                names.users.insert(user.id, user.email.clone());
                names.user_ids.insert(user.email, user.id);
            });
            let expected = if model.users.insert(email, ()).is_some() {
                Err(Failure::Conflict)
            } else {
                Ok(())
            };
            (Output::Done(real.map_err(failure)), Output::Done(expected))
        }
        Op::UserByEmail { user } => {
            let email = email(*user);
            let found = store
                .user_by_email(&email)
                .await
                .map(|u| u.map(|u| u.email));
            let expected = model.users.contains_key(&email).then_some(email);
            (
                Output::User(found.map_err(failure)),
                Output::User(Ok(expected)),
            )
        }
        Op::CreateInstance { instance, owner } => {
            let (name, owner) = (instance_id(*instance), email(*owner));
            let new = NewInstance {
                owner_id: names.user(&owner),
                instance_id: name.clone(),
                instance_type: "t2.micro".into(),
                region: "mock".into(),
                is_mock: true,
            };
            let created = store.create_instance(new).await.map(|instance| {
                names
                    .instances
                    .insert(instance.id, instance.instance_id.clone());
                names
                    .instance_ids
                    .insert(instance.instance_id.clone(), instance.id);
                names.view(&instance)
            });
            let expected = if !model.users.contains_key(&owner) {
                Err(Failure::NotFound)
            } else if model.instance(&name).is_some() {
                Err(Failure::Conflict)
            } else {
                let fresh = ModelInstance {
                    owner,
                    is_monitoring: false,
                    scale: ScaleState::initial(),
                    last_collection_error: None,
                };
                model.instances.push((name.clone(), fresh));
                Ok(model.view(&name).expect("just inserted"))
            };
            (
                Output::Instance(created.map_err(failure)),
                Output::Instance(expected),
            )
        }
        Op::InstancesByOwner { owner } => {
            let owner = email(*owner);
            let id = names.user(&owner);
            let found = store
                .instances_by_owner(id)
                .await
                .expect("instances_by_owner");
            let real = found.iter().map(|i| names.view(i)).collect();
            let expected = model
                .instances
                .iter()
                .filter(|(_, i)| i.owner == owner)
                .filter_map(|(name, _)| model.view(name))
                .collect();
            (Output::Instances(real), Output::Instances(expected))
        }
        Op::SetMonitoring { instance, on } => {
            let name = instance_id(*instance);
            let updated = store
                .set_monitoring(&name, *on)
                .await
                .map(|i| names.view(&i));
            let expected = match model.instance_mut(&name) {
                Some(i) if i.is_monitoring == *on => Err(Failure::Conflict),
                Some(i) => {
                    i.is_monitoring = *on;
                    Ok(model.view(&name).expect("exists"))
                }
                None => Err(Failure::NotFound),
            };
            (
                Output::Instance(updated.map_err(failure)),
                Output::Instance(expected),
            )
        }
        Op::Monitored => {
            let found = store
                .monitored_instances()
                .await
                .expect("monitored_instances");
            let mut real: Vec<InstanceView> = found.iter().map(|i| names.view(i)).collect();
            real.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
            let mut expected: Vec<InstanceView> = model
                .instances
                .iter()
                .filter(|(_, i)| i.is_monitoring)
                .filter_map(|(name, _)| model.view(name))
                .collect();
            expected.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
            (Output::Instances(real), Output::Instances(expected))
        }
        Op::SetCollectionError { instance, error } => {
            let name = instance_id(*instance);
            let error = error.map(|step| CollectionError {
                message: format!("failed at step {step}"),
                at: time(step),
            });
            let id = names.instance(&name);
            let done = store.set_collection_error(id, error.clone()).await;
            let expected = match model.instance_mut(&name) {
                Some(i) => {
                    i.last_collection_error = error;
                    Ok(())
                }
                None => Err(Failure::NotFound),
            };
            (Output::Done(done.map_err(failure)), Output::Done(expected))
        }
        Op::Append { batch } => {
            let named: Vec<(String, Sample)> = batch
                .iter()
                .map(|&(instance, step, cpu)| (instance_id(instance), sample_at(step, cpu)))
                .collect();
            let ids: Vec<(Uuid, Sample)> = named
                .iter()
                .map(|(name, sample)| (names.instance(name), *sample))
                .collect();
            let added = store.append_samples(&ids).await;
            (
                Output::Count(added.map_err(failure)),
                Output::Count(model.append(&named)),
            )
        }
        Op::Windows {
            instances,
            since,
            until,
        } => {
            let requested: Vec<String> = instances.iter().map(|&i| instance_id(i)).collect();
            let ids: Vec<Uuid> = requested.iter().map(|name| names.instance(name)).collect();
            let found = store
                .windows(&ids, time(*since), time(*until))
                .await
                .expect("windows");
            let real = found
                .values()
                .map(|window| {
                    let views: Vec<SampleView> = window.iter().map(|s| names.sample(s)).collect();
                    (views[0].instance_id.clone(), views)
                })
                .collect();
            let expected = requested
                .iter()
                .map(|name| (name.clone(), model.window(name, time(*since), time(*until))))
                .filter(|(_, window)| !window.is_empty())
                .collect();
            (Output::Windows(real), Output::Windows(expected))
        }
        Op::RecentSamples { instance, limit } => {
            let name = instance_id(*instance);
            let found = store
                .recent_samples(names.instance(&name), *limit)
                .await
                .expect("recent_samples");
            let real = found.iter().map(|s| names.sample(s)).collect();
            let expected = model.samples_of(&name).rev().take(*limit).collect();
            (Output::Samples(real), Output::Samples(expected))
        }
        Op::Evaluate {
            instance,
            at,
            stale,
        } => {
            let name = instance_id(*instance);
            let new = model_evaluation(model, names, &name, time(*at), *stale);
            let recorded = store.record_evaluation(new.clone()).await;
            let real = recorded.map(|r| names.decision(&r));
            let expected = model.record(&name, &new);
            (
                Output::Decision(real.map_err(failure)),
                Output::Decision(expected),
            )
        }
        Op::RecentDecisions { instance, limit } => {
            let name = instance_id(*instance);
            let found = store
                .recent_decisions(names.instance(&name), *limit)
                .await
                .expect("recent_decisions");
            let real = found.iter().map(|r| names.decision(r)).collect();
            (
                Output::Decisions(real),
                Output::Decisions(model.recent_decisions(&name, *limit)),
            )
        }
        Op::Purge { before, batch } => {
            let deleted = store
                .purge_before(time(*before), *batch)
                .await
                .map_err(failure);
            let expected = model.purge(time(*before), *batch, names);
            (Output::Count(deleted), Output::Count(Ok(expected)))
        }
        Op::Reopen => {
            *store = reopen_after_drop(store, reopen);
            (Output::Done(Ok(())), Output::Done(Ok(())))
        }
    }
}

/// Drops the only handle to the store, which closes the file, and opens it again.
fn reopen_after_drop(
    store: &mut Arc<dyn Store>,
    reopen: &dyn Fn() -> Arc<dyn Store>,
) -> Arc<dyn Store> {
    let placeholder: Arc<dyn Store> = Arc::new(RedbStore::in_memory().expect("in-memory store"));
    drop(std::mem::replace(store, placeholder));
    reopen()
}

/// Evaluates `name` at `now` over the model's window, against the model's scale state (one
/// level off when `stale`), so that both sides record the same input.
fn model_evaluation(
    model: &Model,
    names: &mut Names,
    name: &str,
    now: DateTime<Utc>,
    stale: bool,
) -> NewDecisionRecord {
    let policy = Policy::default();
    let mut expected = model
        .instance(name)
        .map_or_else(ScaleState::initial, |i| i.scale);
    if stale {
        expected.level += 1;
    }
    let since = engine::window_start(now, policy.window);
    let window: Vec<WindowSample> = model
        .window(name, since, now)
        .into_iter()
        .map(|s| WindowSample {
            sample: s.sample,
            is_outlier: s.outlier_type.is_some(),
        })
        .collect();
    NewDecisionRecord {
        instance: names.instance(name),
        evaluated_at: now,
        expected,
        evaluation: engine::evaluate(&policy, &window, now, &expected),
    }
}

fn run_sequence(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("model.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let reopen = || -> Arc<dyn Store> { Arc::new(RedbStore::open(&path).expect("open")) };
        let mut store = reopen();
        let mut model = Model::default();
        let mut names = Names::default();
        for (index, op) in ops.iter().enumerate() {
            let (real, expected) = apply(op, &mut store, &reopen, &mut model, &mut names).await;
            prop_assert_eq!(real, expected, "operation {} ({:?}) differs", index, op);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn redb_store_matches_model(ops in sequence()) {
        run_sequence(&ops)?;
    }
}
