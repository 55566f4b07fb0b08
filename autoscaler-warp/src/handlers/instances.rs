//! Instance registration, listing and monitoring.

use std::sync::Arc;

use autoscaler_core::store::{self, User};
use tracing::info;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{AppState, json_reply, owned_instance};
use crate::errors::{ApiError, messages};
use crate::models::{
    BodyErrors, ErrorBody, InstanceView, InstancesResponse, MessageResponse, OwnedInstanceErrors,
    RegisterInstanceRequest, RegisterInstanceResponse, ServerErrors, TokenErrors,
};
use crate::validate;

/// Registers an EC2 or a mock instance at scale level 1, not monitored.
///
/// Also served without the trailing slash.
#[utoipa::path(
    post,
    path = "/api/instances/",
    tag = "instances",
    security(("bearer_auth" = [])),
    request_body = RegisterInstanceRequest,
    responses(
        (status = 201, description = "Instance registered", body = RegisterInstanceResponse),
        (status = 400, description = "Missing field, invalid EC2 id or region, or bad JSON",
            body = ErrorBody, examples(
                ("missing" = (value = json!(
                    {"error": "instance_id, instance_type, and region are required"}))),
                ("bad id" = (value = json!({"error": "Invalid instance_id 'web-1': an EC2 \
                    instance id is 'i-' followed by 8 or 17 lowercase hex digits; register \
                    with \"is_mock\": true for a mock instance"}))),
            )),
        TokenErrors,
        (status = 409, description = "Instance id taken", body = ErrorBody,
            example = json!({"error": "Instance already registered"})),
        ServerErrors,
        BodyErrors,
    )
)]
pub async fn register_instance(
    state: Arc<AppState>,
    user: User,
    request: RegisterInstanceRequest,
) -> Result<Response, Rejection> {
    let new = validate::new_instance(user.id, request).map_err(ApiError::bad_request)?;
    let instance = match state.store.create_instance(new).await {
        Ok(instance) => instance,
        Err(store::Error::Conflict { .. }) => {
            return Err(ApiError::conflict(messages::INSTANCE_EXISTS).into());
        }
        Err(cause) => return Err(ApiError::from_store(cause).into()),
    };
    info!(
        instance_id = %instance.instance_id,
        user_id = %user.id,
        is_mock = instance.is_mock,
        "instance registered"
    );
    let body = RegisterInstanceResponse {
        message: "Instance registered successfully".to_owned(),
        instance: InstanceView::new(&instance, &state.policy),
    };
    Ok(json_reply(StatusCode::CREATED, &body))
}

/// Lists the caller's instances, oldest registration first.
///
/// Also served without the trailing slash.
#[utoipa::path(
    get,
    path = "/api/instances/",
    tag = "instances",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The caller's instances", body = InstancesResponse),
        TokenErrors,
        ServerErrors,
    )
)]
pub async fn list_instances(state: Arc<AppState>, user: User) -> Result<Response, Rejection> {
    let instances = state
        .store
        .instances_by_owner(user.id)
        .await
        .map_err(ApiError::from_store)?;
    let body = InstancesResponse {
        instances: instances
            .iter()
            .map(|instance| InstanceView::new(instance, &state.policy))
            .collect(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// Starts monitoring: the instance's metrics are collected and decided on every tick.
#[utoipa::path(
    patch,
    path = "/api/instances/{instance_id}/monitor/start",
    tag = "instances",
    security(("bearer_auth" = [])),
    params(("instance_id" = String, Path, description = "The instance's EC2 or mock id")),
    responses(
        (status = 200, description = "Monitoring started", body = MessageResponse,
            example = json!({"message": "Monitoring started successfully"})),
        (status = 400, description = "Already monitored", body = ErrorBody,
            example = json!({"error": "Monitoring is already active for this instance"})),
        OwnedInstanceErrors,
        ServerErrors,
    )
)]
pub async fn start_monitoring(
    state: Arc<AppState>,
    user: User,
    instance_id: String,
) -> Result<Response, Rejection> {
    set_monitoring(&state, &user, &instance_id, true).await
}

/// Stops monitoring; samples and decisions are kept.
#[utoipa::path(
    patch,
    path = "/api/instances/{instance_id}/monitor/stop",
    tag = "instances",
    security(("bearer_auth" = [])),
    params(("instance_id" = String, Path, description = "The instance's EC2 or mock id")),
    responses(
        (status = 200, description = "Monitoring stopped", body = MessageResponse,
            example = json!({"message": "Monitoring stopped successfully"})),
        (status = 400, description = "Not monitored", body = ErrorBody,
            example = json!({"error": "Monitoring is not active for this instance"})),
        OwnedInstanceErrors,
        ServerErrors,
    )
)]
pub async fn stop_monitoring(
    state: Arc<AppState>,
    user: User,
    instance_id: String,
) -> Result<Response, Rejection> {
    set_monitoring(&state, &user, &instance_id, false).await
}

async fn set_monitoring(
    state: &AppState,
    user: &User,
    instance_id: &str,
    monitoring: bool,
) -> Result<Response, Rejection> {
    owned_instance(state, user, instance_id).await?;
    // The store checks and changes the state in one step, so of racing requests one wins.
    match state.store.set_monitoring(instance_id, monitoring).await {
        Ok(_) => {}
        Err(store::Error::Conflict { .. }) => {
            let message = if monitoring {
                messages::ALREADY_MONITORING
            } else {
                messages::NOT_MONITORING
            };
            return Err(ApiError::bad_request(message).into());
        }
        Err(other) => return Err(ApiError::from_store(other).into()),
    }
    let message = if monitoring {
        info!(instance_id, "monitoring started");
        "Monitoring started successfully"
    } else {
        info!(instance_id, "monitoring stopped");
        "Monitoring stopped successfully"
    };
    let body = MessageResponse {
        message: message.to_owned(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}
