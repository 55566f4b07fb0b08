//! Samples and decisions: reading them, simulating load and pushing samples.

use std::collections::HashMap;
use std::sync::Arc;

use autoscaler_core::Sample;
use autoscaler_core::store::{Instance, StoredSample, User};
use chrono::{TimeDelta, Utc};
use tracing::info;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{AppState, json_reply, owned_instance};
use crate::errors::ApiError;
use crate::models::{
    BodyErrors, DecisionView, DecisionsResponse, ErrorBody, InstantSimulationResponse, MetricView,
    MetricsResponse, OwnedInstanceErrors, ProlongedSimulationResponse, PushRequest, PushResponse,
    ServerErrors, SimulateRequest, SimulatedMetric, SimulationResponse,
};
use crate::validate::{self, Simulation};

/// Samples returned when the request gives no `limit`.
const DEFAULT_METRICS_LIMIT: usize = 100;
/// Decisions returned when the request gives no `limit`.
const DEFAULT_DECISIONS_LIMIT: usize = 50;
/// Largest `limit` of the metrics and decisions endpoints.
const MAX_LIMIT: usize = 1000;

/// Returns the instance's newest samples, newest first.
#[utoipa::path(
    get,
    path = "/api/metrics/{instance_id}",
    tag = "metrics",
    security(("bearer_auth" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance's EC2 or mock id"),
        ("limit" = Option<usize>, Query, description = "Maximum number of samples to return, 1 to 1000; \
            default 100"),
    ),
    responses(
        (status = 200, description = "Newest samples first", body = MetricsResponse),
        (status = 400, description = "Invalid limit", body = ErrorBody,
            example = json!({"error": "Invalid limit '0': must be an integer from 1 to 1000"})),
        OwnedInstanceErrors,
        ServerErrors,
    )
)]
pub async fn metrics(
    state: Arc<AppState>,
    user: User,
    instance_id: String,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let limit = validate::limit(query.get("limit"), DEFAULT_METRICS_LIMIT, MAX_LIMIT)
        .map_err(ApiError::bad_request)?;
    let instance = owned_instance(&state, &user, &instance_id).await?;
    let samples = state
        .store
        .recent_samples(instance.id, limit)
        .await
        .map_err(ApiError::from_store)?;
    let body = MetricsResponse {
        instance_id: instance.instance_id,
        metrics: samples.iter().map(MetricView::from).collect(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// Returns the instance's newest scaling decisions, newest first, with whether each was
/// applied, what blocked it and the evidence.
#[utoipa::path(
    get,
    path = "/api/metrics/decisions/{instance_id}",
    tag = "metrics",
    security(("bearer_auth" = [])),
    params(
        ("instance_id" = String, Path, description = "The instance's EC2 or mock id"),
        ("limit" = Option<usize>, Query, description = "Maximum number of decisions to return, 1 to 1000; \
            default 50"),
    ),
    responses(
        (status = 200, description = "Newest decisions first", body = DecisionsResponse),
        (status = 400, description = "Invalid limit", body = ErrorBody,
            example = json!({"error": "Invalid limit 'x': must be an integer from 1 to 1000"})),
        OwnedInstanceErrors,
        ServerErrors,
    )
)]
pub async fn decisions(
    state: Arc<AppState>,
    user: User,
    instance_id: String,
    query: HashMap<String, String>,
) -> Result<Response, Rejection> {
    let limit = validate::limit(query.get("limit"), DEFAULT_DECISIONS_LIMIT, MAX_LIMIT)
        .map_err(ApiError::bad_request)?;
    let instance = owned_instance(&state, &user, &instance_id).await?;
    let records = state
        .store
        .recent_decisions(instance.id, limit)
        .await
        .map_err(ApiError::from_store)?;
    let decisions = records
        .iter()
        .map(DecisionView::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|cause| ApiError::internal(&cause))?;
    let body = DecisionsResponse {
        instance_id: instance.instance_id,
        decisions,
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// Adds simulated samples: one at now, or with `duration_minutes` a series `interval_seconds`
/// apart whose last sample is at now (10 minutes at 30 s gives 20 samples).
///
/// Absent memory and network values stay absent. The decision tick picks the samples up like
/// collected ones.
#[utoipa::path(
    post,
    path = "/api/metrics/simulate",
    tag = "metrics",
    security(("bearer_auth" = [])),
    request_body = SimulateRequest,
    responses(
        (status = 201, description = "Samples stored; the instant or the prolonged shape",
            body = SimulationResponse),
        (status = 400, description = "Missing field, value out of range, bad duration or \
            interval, too many samples, or bad JSON", body = ErrorBody, examples(
                ("missing" = (value = json!(
                    {"error": "instance_id and cpu_utilization are required"}))),
                ("out of range" = (value = json!(
                    {"error": "cpu_utilization: must not exceed 100 (got 120)"}))),
                ("interval" = (value = json!({"error": "Invalid interval_seconds 0: must be \
                    an integer from 1 to duration_minutes * 60 (600)"}))),
            )),
        OwnedInstanceErrors,
        ServerErrors,
        BodyErrors,
    )
)]
pub async fn simulate(
    state: Arc<AppState>,
    user: User,
    request: SimulateRequest,
) -> Result<Response, Rejection> {
    let now = validate::truncate_to_micros(Utc::now());
    let simulation = validate::simulation(request, now, state.limits.max_simulated_samples)
        .map_err(ApiError::bad_request)?;
    match simulation {
        Simulation::Instant {
            instance_id,
            sample,
        } => simulate_instant(&state, &user, &instance_id, sample).await,
        Simulation::Prolonged {
            instance_id,
            samples,
            duration_minutes,
            interval_seconds,
        } => {
            let instance = owned_instance(&state, &user, &instance_id).await?;
            let stored = append(&state, &instance, &samples).await?;
            info!(
                instance_id,
                stored, duration_minutes, "simulated samples stored"
            );
            let body = SimulationResponse::Prolonged(ProlongedSimulationResponse {
                message: format!(
                    "Created {stored} simulated metrics over {duration_minutes} minutes"
                ),
                metrics_created: stored,
                duration_minutes,
                interval_seconds,
            });
            Ok(json_reply(StatusCode::CREATED, &body))
        }
    }
}

async fn simulate_instant(
    state: &AppState,
    user: &User,
    instance_id: &str,
    sample: Sample,
) -> Result<Response, Rejection> {
    let instance = owned_instance(state, user, instance_id).await?;
    append(state, &instance, &[sample]).await?;
    let stored = stored_at(state, &instance, &sample).await?;
    info!(instance_id, "simulated sample stored");
    let body = SimulationResponse::Instant(InstantSimulationResponse {
        message: "Simulated metric created successfully".to_owned(),
        metric: SimulatedMetric {
            id: stored.id,
            instance_id: instance.instance_id,
            timestamp: crate::models::format_timestamp(stored.sample.timestamp()),
            cpu_utilization: stored.sample.cpu_utilization(),
            memory_usage: stored.sample.memory_usage(),
            network_in: stored.sample.network_in(),
            network_out: stored.sample.network_out(),
        },
    });
    Ok(json_reply(StatusCode::CREATED, &body))
}

/// Returns the stored sample of `instance` at the timestamp of `sample`.
async fn stored_at(
    state: &AppState,
    instance: &Instance,
    sample: &Sample,
) -> Result<StoredSample, ApiError> {
    let at = sample.timestamp();
    let mut windows = state
        .store
        .windows(&[instance.id], at - TimeDelta::microseconds(1), at)
        .await
        .map_err(ApiError::from_store)?;
    windows
        .remove(&instance.id)
        .and_then(|samples| samples.into_iter().find(|s| s.sample.timestamp() == at))
        .ok_or_else(|| {
            ApiError::internal(&format!(
                "sample of {} at {at} missing right after it was stored",
                instance.instance_id
            ))
        })
}

async fn append(
    state: &AppState,
    instance: &Instance,
    samples: &[Sample],
) -> Result<usize, ApiError> {
    let batch: Vec<_> = samples
        .iter()
        .map(|sample| (instance.id, *sample))
        .collect();
    state
        .store
        .append_samples(&batch)
        .await
        .map_err(ApiError::from_store)
}

/// Stores a batch of samples that a client measured itself.
///
/// Each sample needs `cpu_utilization` and a distinct timestamp (a batch of one may omit it
/// and is taken at receive time). A sample whose timestamp the instance already has is
/// skipped and counted as a duplicate, so a client may resend a batch safely.
#[utoipa::path(
    post,
    path = "/api/metrics/push",
    tag = "metrics",
    security(("bearer_auth" = [])),
    request_body = PushRequest,
    responses(
        (status = 201, description = "Samples stored", body = PushResponse),
        (status = 400, description = "A sample is invalid (the message names its index and \
            field), the batch is empty or too large, or bad JSON", body = ErrorBody, examples(
                ("range" = (value = json!(
                    {"error": "samples[3].cpu_utilization: must not exceed 100 (got 120)"}))),
                ("future" = (value = json!({"error": "samples[0].timestamp: \
                    2030-01-01T00:00:00+00:00 is more than 5 minutes in the future (server \
                    time 2026-01-22T05:16:25+00:00)"}))),
            )),
        OwnedInstanceErrors,
        ServerErrors,
        BodyErrors,
    )
)]
pub async fn push(
    state: Arc<AppState>,
    user: User,
    request: PushRequest,
) -> Result<Response, Rejection> {
    let Some(instance_id) = request.instance_id else {
        return Err(ApiError::bad_request("instance_id is required").into());
    };
    let now = validate::truncate_to_micros(Utc::now());
    let samples = validate::pushed_samples(request.samples, now, state.limits.max_pushed_samples)
        .map_err(ApiError::bad_request)?;
    let instance = owned_instance(&state, &user, &instance_id).await?;
    let stored = append(&state, &instance, &samples).await?;
    let duplicates = samples.len() - stored.min(samples.len());
    info!(instance_id, stored, duplicates, "pushed samples stored");
    let body = PushResponse {
        message: push_message(stored, duplicates),
        instance_id: instance.instance_id,
        received: samples.len(),
        stored,
        duplicates,
    };
    Ok(json_reply(StatusCode::CREATED, &body))
}

/// Returns "Stored 2 samples, skipped 1 duplicate", with singular nouns for counts of one.
fn push_message(stored: usize, duplicates: usize) -> String {
    let noun = |count: usize, one: &str, many: &str| if count == 1 { one } else { many }.to_owned();
    format!(
        "Stored {stored} {}, skipped {duplicates} {}",
        noun(stored, "sample", "samples"),
        noun(duplicates, "duplicate", "duplicates")
    )
}

#[cfg(test)]
mod tests {
    use super::push_message;

    #[test]
    fn push_message_counts() {
        assert_eq!(push_message(1, 0), "Stored 1 sample, skipped 0 duplicates");
        assert_eq!(
            push_message(12, 1),
            "Stored 12 samples, skipped 1 duplicate"
        );
    }
}
