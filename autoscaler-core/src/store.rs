//! The storage contract: users, instances, samples and decision records.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::capacity::{Block, Outcome, ScaleState};
use crate::engine::{self, Evaluation, Evidence, Rule, WindowSample};
use crate::model::{Decision, Sample};
use crate::policy::Policy;

/// Result of a [`Store`] operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Failure of a [`Store`] operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named record does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// Kind of record, for example `instance`.
        entity: &'static str,
        /// The key looked up.
        key: String,
    },
    /// A uniqueness rule or an optimistic check failed: the record exists already, or the
    /// state an evaluation was computed against has changed.
    #[error("{entity} conflict: {key}")]
    Conflict {
        /// Kind of record, for example `user`.
        entity: &'static str,
        /// The key that conflicted.
        key: String,
    },
    /// The backend cannot be reached or is locked by another process; retrying later may work.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What is unavailable and why.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Any other backend failure, including corrupt data.
    #[error("store backend failed: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// Builds a [`Error::Backend`] from a message and a source error.
    pub fn backend(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds a [`Error::Unavailable`] from a message and a source error.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Identifier.
    pub id: Uuid,
    /// E-mail address, unique; callers normalize it (the server lowercases it).
    pub email: String,
    /// Password hash in PHC string format.
    pub password_hash: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

/// Input of [`Store::create_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// E-mail address, unique.
    pub email: String,
    /// Password hash in PHC string format.
    pub password_hash: String,
}

/// The last failed metric collection of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionError {
    /// Description of the failure, for operators.
    pub message: String,
    /// When it failed.
    pub at: DateTime<Utc>,
}

/// A monitored (or monitorable) compute instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Internal identifier; samples and decisions refer to it.
    pub id: Uuid,
    /// The owning user.
    pub owner_id: Uuid,
    /// The cloud's instance id (for example `i-1234567890abcdef0`) or a free-form mock id; unique.
    pub instance_id: String,
    /// Instance type, for example `t2.micro`.
    pub instance_type: String,
    /// Region, for example `us-east-1`, or `mock`.
    pub region: String,
    /// Whether the metrics come from the mock collector.
    pub is_mock: bool,
    /// Whether the ticks collect and decide for this instance.
    pub is_monitoring: bool,
    /// Scale level, last action and last evaluated sample.
    pub scale: ScaleState,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// The last failed collection, cleared by the next successful one.
    pub last_collection_error: Option<CollectionError>,
}

/// Input of [`Store::create_instance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance {
    /// The owning user.
    pub owner_id: Uuid,
    /// The cloud's or the mock's instance id; unique.
    pub instance_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Region.
    pub region: String,
    /// Whether the metrics come from the mock collector.
    pub is_mock: bool,
}

/// A stored sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StoredSample {
    /// Identifier.
    pub id: Uuid,
    /// The instance's [`Instance::id`].
    pub instance: Uuid,
    /// The values.
    pub sample: Sample,
    /// The decision of the sustained rule that flagged this sample, if one did.
    pub outlier_type: Option<Decision>,
}

impl StoredSample {
    /// Returns the sample as the engine reads it.
    pub fn to_window_sample(&self) -> WindowSample {
        WindowSample {
            sample: self.sample,
            is_outlier: self.outlier_type.is_some(),
        }
    }
}

/// An evaluation ready to be recorded, with the state it was computed against.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDecisionRecord {
    /// The instance's [`Instance::id`].
    pub instance: Uuid,
    /// When the evaluation ran.
    pub evaluated_at: DateTime<Utc>,
    /// The scale state the evaluation read; recording fails with [`Error::Conflict`] when the
    /// stored state differs, so that two racing evaluations cannot both apply.
    pub expected: ScaleState,
    /// The evaluation.
    pub evaluation: Evaluation,
}

impl NewDecisionRecord {
    /// Evaluates the stored `samples` of `instance` at `now` against `state`, ready to record.
    pub fn evaluate(
        policy: &Policy,
        instance: Uuid,
        samples: &[StoredSample],
        state: ScaleState,
        now: DateTime<Utc>,
    ) -> NewDecisionRecord {
        let window: Vec<WindowSample> =
            samples.iter().map(StoredSample::to_window_sample).collect();
        NewDecisionRecord {
            instance,
            evaluated_at: now,
            expected: state,
            evaluation: engine::evaluate(policy, &window, now, &state),
        }
    }

    /// Reads the window of `instance` that ends at `now` from `store` and evaluates it against
    /// `state`, as one decision tick would for one instance. Useful for replays and backtests.
    ///
    /// # Errors
    ///
    /// Returns the store's error when the window cannot be read.
    pub async fn evaluate_stored(
        store: &dyn Store,
        policy: &Policy,
        instance: Uuid,
        state: ScaleState,
        now: DateTime<Utc>,
    ) -> Result<NewDecisionRecord> {
        let since = engine::window_start(now, policy.window);
        let mut windows = store.windows(&[instance], since, now).await?;
        let samples = windows.remove(&instance).unwrap_or_default();
        Ok(NewDecisionRecord::evaluate(
            policy, instance, &samples, state, now,
        ))
    }

    /// Returns the state the instance has once this record is stored.
    pub fn next_state(&self) -> ScaleState {
        let sample = self
            .evaluation
            .latest()
            .map_or(self.evaluated_at, Sample::timestamp);
        self.expected
            .after(&self.evaluation.outcome, sample, self.evaluated_at)
    }
}

/// A recorded evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Identifier.
    pub id: Uuid,
    /// The instance's [`Instance::id`].
    pub instance: Uuid,
    /// When the evaluation ran.
    pub evaluated_at: DateTime<Utc>,
    /// The engine's decision.
    pub decision: Decision,
    /// The rule that decided.
    pub rule: Rule,
    /// Human-readable reason rendered from the evidence.
    pub reason: String,
    /// Whether the scale level changed, and if not, what blocked it.
    pub outcome: Outcome,
    /// Scale level before the evaluation.
    pub level_before: u32,
    /// Scale level after it.
    pub level_after: u32,
    /// What the engine looked at, including the decided-on sample.
    pub evidence: Evidence,
}

impl DecisionRecord {
    /// Builds the record that stores `new` under `id`.
    pub fn from_new(id: Uuid, new: &NewDecisionRecord) -> DecisionRecord {
        let evaluation = &new.evaluation;
        DecisionRecord {
            id,
            instance: new.instance,
            evaluated_at: new.evaluated_at,
            decision: evaluation.decision,
            rule: evaluation.rule,
            reason: evaluation.reason(),
            outcome: evaluation.outcome,
            level_before: new.expected.level,
            level_after: new.next_state().level,
            evidence: evaluation.evidence.clone(),
        }
    }

    /// Returns the sample the decision is about.
    pub fn sample(&self) -> Option<&Sample> {
        self.evidence.latest.as_ref()
    }

    /// Returns whether the decision changed the scale level.
    pub fn applied(&self) -> bool {
        self.outcome.is_applied()
    }

    /// Returns the guard that blocked the decision, if one did.
    pub fn blocked_by(&self) -> Option<Block> {
        self.outcome.block()
    }
}

/// Persistent storage for the autoscaler.
///
/// # Contract
///
/// Every implementation passes the checks of the `conformance` module (feature `conformance`).
///
/// - **Uniqueness.** User e-mails and instance ids are unique, also under concurrent inserts:
///   of many racing creations of one key exactly one succeeds and the rest return
///   [`Error::Conflict`]. E-mails are compared exactly as given.
/// - **Samples.** An instance holds at most one sample per timestamp; appending a sample whose
///   instance and timestamp are already stored keeps the stored one and does not count it.
///   Appending for an unknown instance returns [`Error::NotFound`] and stores nothing of the batch.
/// - **Ordering.** "Newest N" reads return records newest first. Window reads return each
///   instance's samples in ascending timestamp order.
/// - **Atomicity.** [`Store::record_evaluation`] stores the record, flags the decided-on sample
///   when a sustained rule fired, and moves the scale state, all or nothing. It first checks
///   that the stored scale state equals [`NewDecisionRecord::expected`] and returns
///   [`Error::Conflict`] otherwise, so an action is never applied twice.
/// - **Durability.** Once a write returns `Ok`, it survives a crash or restart of the process.
/// - **Precision.** Stored times keep at least microsecond precision; a backend may drop finer
///   digits, so samples of one instance less than a microsecond apart may count as one.
/// - **Errors.** A backend that cannot be reached returns [`Error::Unavailable`]; unknown keys
///   in updates return [`Error::NotFound`]; reads of unknown keys return `None` or empty results.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a user.
    async fn create_user(&self, user: NewUser) -> Result<User>;

    /// Returns the user with this exact e-mail.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;

    /// Returns the user with this id.
    async fn user(&self, id: Uuid) -> Result<Option<User>>;

    /// Registers an instance at scale level 1, not monitored.
    ///
    /// Returns [`Error::NotFound`] when the owner is not a registered user.
    async fn create_instance(&self, instance: NewInstance) -> Result<Instance>;

    /// Returns the instance with this cloud or mock instance id.
    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>>;

    /// Returns the user's instances, oldest registration first.
    async fn instances_by_owner(&self, owner_id: Uuid) -> Result<Vec<Instance>>;

    /// Turns monitoring on or off and returns the updated instance.
    ///
    /// The check and the change are one atomic step: when the instance is already in the
    /// requested state the call returns [`Error::Conflict`] with entity `monitoring`, so of
    /// many racing requests to start (or stop) monitoring exactly one succeeds.
    async fn set_monitoring(&self, instance_id: &str, monitoring: bool) -> Result<Instance>;

    /// Returns every monitored instance.
    async fn monitored_instances(&self) -> Result<Vec<Instance>>;

    /// Records the outcome of a collection: `None` clears the last error.
    async fn set_collection_error(&self, id: Uuid, error: Option<CollectionError>) -> Result<()>;

    /// Appends samples of one or many instances and returns how many were new.
    async fn append_samples(&self, batch: &[(Uuid, Sample)]) -> Result<usize>;

    /// Returns, for each listed instance, its samples with timestamps in `(since, until]`,
    /// in ascending timestamp order, in one call. Instances without samples are absent.
    async fn windows(
        &self,
        instances: &[Uuid],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<Uuid, Vec<StoredSample>>>;

    /// Returns the instance's newest `limit` samples, newest first.
    async fn recent_samples(&self, instance: Uuid, limit: usize) -> Result<Vec<StoredSample>>;

    /// Records an evaluation and applies it atomically; see the contract above.
    async fn record_evaluation(&self, record: NewDecisionRecord) -> Result<DecisionRecord>;

    /// Returns the instance's newest `limit` decision records, newest first.
    async fn recent_decisions(&self, instance: Uuid, limit: usize) -> Result<Vec<DecisionRecord>>;

    /// Returns the monitored instances this process should collect and decide for now.
    ///
    /// `holder` identifies the calling process and `lease` is how long a claim lasts. A
    /// single-process backend returns every monitored instance; a shared backend hands each
    /// instance to one holder at a time and gives a dead holder's instances to others once
    /// its leases expire.
    async fn claim_monitored(
        &self,
        holder: Uuid,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Instance>> {
        let _ = (holder, lease, now);
        self.monitored_instances().await
    }

    /// Gives up every claim of `holder`, so that other holders can take its instances at once
    /// instead of after the lease ends. A process calls it when it stops. The default does
    /// nothing, which suits a backend that does not keep claims.
    async fn release_claims(&self, holder: Uuid) -> Result<()> {
        let _ = holder;
        Ok(())
    }

    /// Deletes samples and decision records older than `cutoff`, at most `batch` rows of each
    /// per call, and returns how many rows went. The default keeps everything.
    async fn purge_before(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize> {
        let _ = (cutoff, batch);
        Ok(0)
    }
}

#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        (**self).create_user(user).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        (**self).user_by_email(email).await
    }
    async fn user(&self, id: Uuid) -> Result<Option<User>> {
        (**self).user(id).await
    }
    async fn create_instance(&self, instance: NewInstance) -> Result<Instance> {
        (**self).create_instance(instance).await
    }
    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>> {
        (**self).instance(instance_id).await
    }
    async fn instances_by_owner(&self, owner_id: Uuid) -> Result<Vec<Instance>> {
        (**self).instances_by_owner(owner_id).await
    }
    async fn set_monitoring(&self, instance_id: &str, monitoring: bool) -> Result<Instance> {
        (**self).set_monitoring(instance_id, monitoring).await
    }
    async fn monitored_instances(&self) -> Result<Vec<Instance>> {
        (**self).monitored_instances().await
    }
    async fn set_collection_error(&self, id: Uuid, error: Option<CollectionError>) -> Result<()> {
        (**self).set_collection_error(id, error).await
    }
    async fn append_samples(&self, batch: &[(Uuid, Sample)]) -> Result<usize> {
        (**self).append_samples(batch).await
    }
    async fn windows(
        &self,
        instances: &[Uuid],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<Uuid, Vec<StoredSample>>> {
        (**self).windows(instances, since, until).await
    }
    async fn recent_samples(&self, instance: Uuid, limit: usize) -> Result<Vec<StoredSample>> {
        (**self).recent_samples(instance, limit).await
    }
    async fn record_evaluation(&self, record: NewDecisionRecord) -> Result<DecisionRecord> {
        (**self).record_evaluation(record).await
    }
    async fn recent_decisions(&self, instance: Uuid, limit: usize) -> Result<Vec<DecisionRecord>> {
        (**self).recent_decisions(instance, limit).await
    }
    async fn claim_monitored(
        &self,
        holder: Uuid,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Instance>> {
        (**self).claim_monitored(holder, lease, now).await
    }
    async fn release_claims(&self, holder: Uuid) -> Result<()> {
        (**self).release_claims(holder).await
    }
    async fn purge_before(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize> {
        (**self).purge_before(cutoff, batch).await
    }
}
