//! Request and response bodies of the HTTP API, with their OpenAPI schemas.
//!
//! Request fields are optional in the types so that a missing field gets the contract's own
//! message (for example "Email and password are required") instead of a generic parse error.

use autoscaler_core::store::{CollectionError, DecisionRecord, Instance, StoredSample};
use autoscaler_core::{Policy, Sample, capacity_percent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

/// Formats a time the way the original service did: UTC, no offset, microseconds, for
/// example `2026-01-22T05:16:25.123456`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, naming the field or value at fault.
    #[schema(example = "Instance not found")]
    pub error: String,
}

/// The error response of every endpoint that needs a bearer token, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum TokenErrors {
    /// Token missing, expired or invalid.
    #[response(status = 401, examples(
        ("missing" = (value = json!({"error": "Token is missing"}))),
        ("expired" = (value = json!({"error": "Token has expired"}))),
        ("invalid" = (value = json!(
            {"error": "Token is invalid; log in again to get a new one"}))),
    ))]
    Unauthorized(ErrorBody),
}

/// The error responses of every endpoint that needs a bearer token and an instance of the
/// caller, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum OwnedInstanceErrors {
    /// Token missing, expired or invalid.
    #[response(status = 401, example = json!({"error": "Token is missing"}))]
    Unauthorized(ErrorBody),
    /// Another user registered the instance.
    #[response(status = 403,
        example = json!({"error": "Unauthorized: You don't own this instance"}))]
    Forbidden(ErrorBody),
    /// No instance has this id.
    #[response(status = 404, example = json!({"error": "Instance not found"}))]
    NotFound(ErrorBody),
}

/// The error responses of every endpoint that reads a JSON body, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// The body is larger than the server's limit (`--max-body-bytes`, default 1 MiB).
    #[response(status = 413,
        example = json!({"error": "Request body is larger than 1048576 bytes"}))]
    PayloadTooLarge(ErrorBody),
    /// The body is not declared as JSON.
    #[response(status = 415, example = json!(
        {"error": "Content-Type must be application/json (got text/plain)"}))]
    UnsupportedMediaType(ErrorBody),
}

/// The error responses of every endpoint that uses the database, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum ServerErrors {
    /// An unexpected failure; the server log has the cause.
    #[response(status = 500, example = json!(
        {"error": "Internal server error; the server log has the details"}))]
    Internal(ErrorBody),
    /// The database cannot be reached; retry later.
    #[response(status = 503, example = json!(
        {"error": "Database unavailable: the server cannot reach its database; retry later"}))]
    Unavailable(ErrorBody),
}

/// Body of a response that only carries a message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageResponse {
    /// What happened.
    #[schema(example = "Monitoring started successfully")]
    pub message: String,
}

/// Health check response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// Always "Cloud Resource Autoscaler API is running".
    #[schema(example = "Cloud Resource Autoscaler API is running")]
    pub message: String,
    /// API version.
    #[schema(example = "1.0")]
    pub version: String,
}

/// Body of `GET /api/status`: which replica answered and how much work it holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    /// Id of this server process among the replicas that share a database; new at each start.
    pub replica_id: Uuid,
    /// Storage backend: `embedded` (one process) or `postgresql` (any number of replicas).
    #[schema(example = "postgresql")]
    pub backend: String,
    /// Monitored instances this replica collects and decides for, as of its latest tick.
    #[schema(example = 100)]
    pub held_instances: usize,
    /// Seconds a claim on an instance lasts without renewal (`LEASE_SECS`).
    #[schema(example = 45)]
    pub lease_seconds: u64,
}

/// E-mail and password, for registration and login.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CredentialsRequest {
    /// E-mail address; compared without regard to case.
    #[schema(example = "user@example.com")]
    pub email: Option<String>,
    /// Password; at least 8 characters at registration.
    #[schema(example = "securepassword123")]
    pub password: Option<String>,
}

/// Response to a successful registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    /// "User registered successfully".
    #[schema(example = "User registered successfully")]
    pub message: String,
    /// The new user's id.
    pub user_id: Uuid,
}

/// Response to a successful login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// "Login successful".
    #[schema(example = "Login successful")]
    pub message: String,
    /// Bearer token, valid for 24 hours.
    pub token: String,
}

/// The logged-in user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    /// The user's id.
    pub user_id: Uuid,
    /// E-mail address, lowercased.
    pub email: String,
    /// Registration time, UTC.
    #[schema(example = "2026-01-22T05:16:25.123456")]
    pub created_at: String,
    /// Instances the user registered.
    pub instance_count: usize,
    /// Of those, instances being monitored.
    pub monitoring_count: usize,
}

/// Instance registration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RegisterInstanceRequest {
    /// EC2 instance id (`i-` and 8 or 17 lowercase hex digits), or for a mock instance any id
    /// of letters, digits, `-`, `_` and `.`; at most 64 characters.
    #[schema(example = "mock-test-1")]
    pub instance_id: Option<String>,
    /// Instance type, for example `t2.micro`.
    #[schema(example = "t2.micro")]
    pub instance_type: Option<String>,
    /// AWS region such as `us-east-1`, or any label (for example `mock`) for a mock instance.
    #[schema(example = "mock")]
    pub region: Option<String>,
    /// Whether metrics are generated instead of read from CloudWatch; default false.
    #[schema(example = true)]
    pub is_mock: Option<bool>,
}

/// The last failed metric collection of an instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionErrorView {
    /// What failed.
    pub message: String,
    /// When, UTC.
    #[schema(example = "2026-01-22T05:16:25.123456")]
    pub at: String,
}

/// A registered instance with its capacity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    /// Internal id.
    pub id: Uuid,
    /// The cloud's or the mock's instance id; used in paths.
    #[schema(example = "mock-test-1")]
    pub instance_id: String,
    /// Instance type.
    #[schema(example = "t2.micro")]
    pub instance_type: String,
    /// Region.
    #[schema(example = "mock")]
    pub region: String,
    /// Whether the collection and decision ticks run for it.
    pub is_monitoring: bool,
    /// Whether its metrics are generated.
    pub is_mock: bool,
    /// CPU capacity in percent of the level-1 capacity.
    #[schema(example = 150.0)]
    pub cpu_capacity: f64,
    /// Memory capacity in percent of the level-1 capacity.
    #[schema(example = 150.0)]
    pub memory_capacity: f64,
    /// Network capacity in percent of the level-1 capacity.
    #[schema(example = 150.0)]
    pub network_capacity: f64,
    /// Scale level, 1 at registration.
    #[schema(example = 2)]
    pub current_scale_level: u32,
    /// Registration time, UTC.
    #[schema(example = "2026-01-22T05:16:25.123456")]
    pub created_at: String,
    /// The last failed collection, or null when the last one succeeded.
    pub last_collection_error: Option<CollectionErrorView>,
}

impl InstanceView {
    /// Builds the view of `instance`, with capacity from its level and the policy's step.
    pub fn new(instance: &Instance, policy: &Policy) -> InstanceView {
        let capacity = capacity_percent(instance.scale.level, policy.step_factor);
        InstanceView {
            id: instance.id,
            instance_id: instance.instance_id.clone(),
            instance_type: instance.instance_type.clone(),
            region: instance.region.clone(),
            is_monitoring: instance.is_monitoring,
            is_mock: instance.is_mock,
            cpu_capacity: capacity,
            memory_capacity: capacity,
            network_capacity: capacity,
            current_scale_level: instance.scale.level,
            created_at: format_timestamp(instance.created_at),
            last_collection_error: instance.last_collection_error.as_ref().map(error_view),
        }
    }
}

fn error_view(error: &CollectionError) -> CollectionErrorView {
    CollectionErrorView {
        message: error.message.clone(),
        at: format_timestamp(error.at),
    }
}

/// Response to a successful instance registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterInstanceResponse {
    /// "Instance registered successfully".
    #[schema(example = "Instance registered successfully")]
    pub message: String,
    /// The new instance.
    pub instance: InstanceView,
}

/// The caller's instances.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstancesResponse {
    /// Oldest registration first.
    pub instances: Vec<InstanceView>,
}

/// A stored sample.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricView {
    /// Sample id.
    pub id: Uuid,
    /// When the sample was taken, UTC.
    #[schema(example = "2026-01-22T05:20:30.123456")]
    pub timestamp: String,
    /// CPU utilization in percent.
    #[schema(example = 45.2)]
    pub cpu_utilization: f64,
    /// Memory usage in percent, or null when the source does not report it.
    #[schema(example = 62.8)]
    pub memory_usage: Option<f64>,
    /// Bytes received over the sample's period, or null.
    #[schema(example = 1024000.0)]
    pub network_in: Option<f64>,
    /// Bytes sent over the sample's period, or null.
    #[schema(example = 512000.0)]
    pub network_out: Option<f64>,
    /// Whether a sustained rule flagged the sample.
    pub is_outlier: bool,
    /// `scale_up` or `scale_down` when flagged, else null.
    #[schema(example = json!(null))]
    pub outlier_type: Option<String>,
}

impl From<&StoredSample> for MetricView {
    fn from(stored: &StoredSample) -> MetricView {
        let sample = &stored.sample;
        MetricView {
            id: stored.id,
            timestamp: format_timestamp(sample.timestamp()),
            cpu_utilization: sample.cpu_utilization(),
            memory_usage: sample.memory_usage(),
            network_in: sample.network_in(),
            network_out: sample.network_out(),
            is_outlier: stored.outlier_type.is_some(),
            outlier_type: stored.outlier_type.map(|d| d.as_str().to_owned()),
        }
    }
}

/// An instance's newest samples.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricsResponse {
    /// The instance id from the path.
    pub instance_id: String,
    /// Newest first.
    pub metrics: Vec<MetricView>,
}

/// A recorded evaluation of the decision engine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    /// Decision id.
    pub id: Uuid,
    /// When the evaluation ran, UTC.
    #[schema(example = "2026-01-22T05:21:00.123456")]
    pub timestamp: String,
    /// CPU of the decided-on (newest) sample, or null when the window was empty.
    #[schema(example = 92.5)]
    pub cpu_utilization: Option<f64>,
    /// Memory of the decided-on sample, or null.
    #[schema(example = 68.3)]
    pub memory_usage: Option<f64>,
    /// Network in of the decided-on sample, or null.
    #[schema(example = 2048000.0)]
    pub network_in: Option<f64>,
    /// Network out of the decided-on sample, or null.
    #[schema(example = 1024000.0)]
    pub network_out: Option<f64>,
    /// `scale_up`, `scale_down` or `no_action`: what the rules decided, applied or not.
    #[schema(example = "scale_up")]
    pub decision: String,
    /// Human-readable reason.
    #[schema(
        example = "Sustained scale up: CPU > 90% for 85.0% of last 5 minutes (Current: 92.50%)"
    )]
    pub reason: String,
    /// Rule that decided: `no_data`, `sustained_low`, `sustained_high`, `insufficient_data`
    /// or `iqr`.
    #[schema(example = "sustained_high")]
    pub rule: String,
    /// Whether the scale level changed.
    pub applied: bool,
    /// What stopped a scaling decision: `cooldown`, `max_level`, `min_level`,
    /// `recommend_only`, or null.
    #[schema(example = json!(null))]
    pub blocked_by: Option<String>,
    /// Scale level before the evaluation.
    #[schema(example = 1)]
    pub level_before: u32,
    /// Scale level after it.
    #[schema(example = 2)]
    pub level_after: u32,
    /// What the engine looked at: window size, sustained-rule counts, quartiles, fences and
    /// votes per signal.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
}

impl DecisionView {
    /// Builds the view of `record`.
    ///
    /// # Errors
    ///
    /// Returns the serializer's error if the evidence cannot be turned into JSON.
    pub fn new(record: &DecisionRecord) -> Result<DecisionView, serde_json::Error> {
        let sample: Option<&Sample> = record.sample();
        Ok(DecisionView {
            id: record.id,
            timestamp: format_timestamp(record.evaluated_at),
            cpu_utilization: sample.map(Sample::cpu_utilization),
            memory_usage: sample.and_then(Sample::memory_usage),
            network_in: sample.and_then(Sample::network_in),
            network_out: sample.and_then(Sample::network_out),
            decision: record.decision.as_str().to_owned(),
            reason: record.reason.clone(),
            rule: record.rule.as_str().to_owned(),
            applied: record.applied(),
            blocked_by: record.blocked_by().map(|block| block.as_str().to_owned()),
            level_before: record.level_before,
            level_after: record.level_after,
            evidence: serde_json::to_value(&record.evidence)?,
        })
    }
}

/// An instance's newest decisions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionsResponse {
    /// The instance id from the path.
    pub instance_id: String,
    /// Newest first.
    pub decisions: Vec<DecisionView>,
}

/// Simulated load: one sample now, or with `duration_minutes` a series that ends now.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SimulateRequest {
    /// The instance to add samples to; it must be yours.
    #[schema(example = "mock-test-1")]
    pub instance_id: Option<String>,
    /// CPU utilization in percent, 0 to 100; required.
    #[schema(example = 95.0)]
    pub cpu_utilization: Option<f64>,
    /// Memory usage in percent, 0 to 100; absent stays absent.
    #[schema(example = 50.0)]
    pub memory_usage: Option<f64>,
    /// Bytes received per sample; absent stays absent.
    pub network_in: Option<f64>,
    /// Bytes sent per sample; absent stays absent.
    pub network_out: Option<f64>,
    /// Length of a prolonged simulation in minutes, 1 to 43200 (30 days).
    #[schema(example = 10)]
    pub duration_minutes: Option<i64>,
    /// Seconds between the samples of a prolonged simulation; default 30; at most
    /// `duration_minutes * 60`.
    #[schema(example = 30)]
    pub interval_seconds: Option<i64>,
}

/// The sample an instant simulation stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SimulatedMetric {
    /// Sample id.
    pub id: Uuid,
    /// The instance id.
    pub instance_id: String,
    /// When, UTC.
    #[schema(example = "2026-01-22T05:22:15.123456")]
    pub timestamp: String,
    /// CPU utilization in percent.
    pub cpu_utilization: f64,
    /// Memory usage in percent, or null.
    pub memory_usage: Option<f64>,
    /// Bytes received, or null.
    pub network_in: Option<f64>,
    /// Bytes sent, or null.
    pub network_out: Option<f64>,
}

/// Response to an instant simulation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstantSimulationResponse {
    /// "Simulated metric created successfully".
    #[schema(example = "Simulated metric created successfully")]
    pub message: String,
    /// The stored sample.
    pub metric: SimulatedMetric,
}

/// Response to a prolonged simulation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProlongedSimulationResponse {
    /// For example "Created 20 simulated metrics over 10 minutes".
    #[schema(example = "Created 20 simulated metrics over 10 minutes")]
    pub message: String,
    /// Samples stored.
    #[schema(example = 20)]
    pub metrics_created: usize,
    /// The requested duration.
    #[schema(example = 10)]
    pub duration_minutes: i64,
    /// The requested interval.
    #[schema(example = 30)]
    pub interval_seconds: i64,
}

/// Response to a simulation: instant or prolonged.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SimulationResponse {
    /// One sample at now.
    Instant(InstantSimulationResponse),
    /// A backdated series.
    Prolonged(ProlongedSimulationResponse),
}

/// One pushed sample.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PushSample {
    /// When the sample was taken: RFC 3339 (`2026-01-22T05:16:25Z`, any offset) or without
    /// offset read as UTC (`2026-01-22T05:16:25.123456`). At most 5 minutes in the future.
    /// May be omitted only in a batch of one sample, which is then taken at receive time.
    #[schema(example = "2026-01-22T05:16:25Z")]
    pub timestamp: Option<String>,
    /// CPU utilization in percent, 0 to 100; required.
    #[schema(example = 93.7)]
    pub cpu_utilization: Option<f64>,
    /// Memory usage in percent, 0 to 100, or absent.
    pub memory_usage: Option<f64>,
    /// Bytes received over the sample's period, or absent.
    pub network_in: Option<f64>,
    /// Bytes sent over the sample's period, or absent.
    pub network_out: Option<f64>,
}

/// A batch of samples for one instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PushRequest {
    /// The instance the samples belong to; it must be yours.
    #[schema(example = "i-0123456789abcdef0")]
    pub instance_id: Option<String>,
    /// The samples, in any order, with distinct timestamps.
    pub samples: Option<Vec<PushSample>>,
}

/// Response to a push.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushResponse {
    /// For example "Stored 12 samples, skipped 0 duplicates".
    #[schema(example = "Stored 12 samples, skipped 0 duplicates")]
    pub message: String,
    /// The instance id.
    pub instance_id: String,
    /// Samples in the request.
    pub received: usize,
    /// Samples stored.
    pub stored: usize,
    /// Samples skipped because the instance already had a sample at that timestamp.
    pub duplicates: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamp_has_microseconds_and_no_offset() {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 22, 5, 16, 25)
            .single()
            .expect("valid date");
        assert_eq!(format_timestamp(at), "2026-01-22T05:16:25.000000");
        let at = at + chrono::TimeDelta::nanoseconds(123_456_789);
        assert_eq!(format_timestamp(at), "2026-01-22T05:16:25.123456");
    }
}
