//! Request handlers: one function per endpoint, each documented for the OpenAPI document.
//!
//! Handlers return `Err(Rejection)` built from [`ApiError`]; the rejection handler in
//! [`crate::errors`] turns it into the JSON error body.

pub mod instances;
pub mod metrics;
pub mod users;

use std::sync::Arc;

use autoscaler_core::store::{Instance, User};
use autoscaler_core::{Policy, Scheduler, Store};
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::auth::{Passwords, TokenRejection, Tokens};
use crate::errors::{ApiError, messages};
use crate::models::{HealthResponse, StatusResponse};

pub use instances::{list_instances, register_instance, start_monitoring, stop_monitoring};
pub use metrics::{decisions, metrics, push, simulate};
pub use users::{login, me, register};

/// Request limits from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: u64,
    /// Maximum number of samples one prolonged simulation may create.
    pub max_simulated_samples: u64,
    /// Maximum number of samples one push may carry.
    pub max_pushed_samples: u64,
}

/// Shared state of the handlers.
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Password hashing.
    pub passwords: Passwords,
    /// Login tokens.
    pub tokens: Tokens,
    /// The decision policy; capacity in responses uses its step factor.
    pub policy: Policy,
    /// The collection and decision ticks, for the replica's status.
    pub scheduler: Arc<Scheduler>,
    /// Storage backend.
    pub backend: Backend,
    /// Request limits.
    pub limits: Limits,
}

/// Storage backend of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One embedded database file; a single server process.
    Embedded,
    /// A PostgreSQL database that any number of replicas may share.
    Postgresql,
}

impl Backend {
    /// Returns the name used in the status response and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Postgresql => "postgresql",
        }
    }
}

/// Builds a JSON response with `status`.
fn json_reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Reports that the API is up.
#[utoipa::path(
    get,
    path = "/api/",
    tag = "health",
    responses(
        (status = 200, description = "The API is running", body = HealthResponse),
    )
)]
pub async fn health() -> Result<Response, Rejection> {
    let body = HealthResponse {
        message: "Cloud Resource Autoscaler API is running".to_owned(),
        version: "1.0".to_owned(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// Reports this replica's id, storage backend and the monitored instances it holds.
///
/// Needs no token, like the health check, so that load balancers and monitoring can read it.
/// The count is that of the replica's latest claim, taken at its latest tick.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "health",
    responses(
        (status = 200, description = "This replica's status", body = StatusResponse),
    )
)]
pub async fn status(state: Arc<AppState>) -> Result<Response, Rejection> {
    let config = state.scheduler.config();
    let body = StatusResponse {
        replica_id: config.holder,
        backend: state.backend.as_str().to_owned(),
        held_instances: state.scheduler.held_instances(),
        lease_seconds: config.lease.as_secs(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// Returns the user a bearer `Authorization` header belongs to.
///
/// # Errors
///
/// 401 with "Token is missing" (no header, or not a bearer token), "Token has expired", or an
/// invalid-token message (bad signature, malformed, or the user no longer exists).
pub async fn authenticate(header: Option<String>, state: &AppState) -> Result<User, ApiError> {
    let Some(header) = header else {
        return Err(ApiError::unauthorized(messages::TOKEN_MISSING));
    };
    let token = bearer_token(&header).ok_or_else(|| {
        ApiError::unauthorized(format!(
            "{}: the Authorization header must be 'Bearer <token>'",
            messages::TOKEN_MISSING
        ))
    })?;
    let claims = state
        .tokens
        .verify(token)
        .map_err(|rejection| match rejection {
            TokenRejection::Expired => ApiError::unauthorized(messages::TOKEN_EXPIRED),
            TokenRejection::Invalid => ApiError::unauthorized(messages::TOKEN_INVALID),
        })?;
    match state.store.user(claims.sub).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(ApiError::unauthorized(messages::TOKEN_USER_UNKNOWN)),
        Err(cause) => Err(ApiError::from_store(cause)),
    }
}

/// Returns the token of a `Bearer <token>` header; the scheme is case-insensitive.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Returns the instance `instance_id` if `user` owns it.
///
/// # Errors
///
/// 404 "Instance not found" when it is not registered, 403 "Unauthorized: You don't own this
/// instance" when another user registered it.
async fn owned_instance(
    state: &AppState,
    user: &User,
    instance_id: &str,
) -> Result<Instance, ApiError> {
    let instance = state
        .store
        .instance(instance_id)
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| ApiError::not_found(messages::INSTANCE_NOT_FOUND))?;
    if instance.owner_id != user.id {
        return Err(ApiError::forbidden(messages::NOT_OWNER));
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
