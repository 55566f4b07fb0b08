//! API errors and the rejection handler that turns every failure into `{"error": "..."}`.

use std::convert::Infallible;

use autoscaler_core::store;
use tracing::error;
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::{Rejection, Reply};

use crate::models::ErrorBody;

/// Error strings of the original service's HTTP contract, kept exactly.
pub mod messages {
    /// Register or login without an e-mail or a password.
    pub const CREDENTIALS_REQUIRED: &str = "Email and password are required";
    /// Register with an e-mail that is taken.
    pub const USER_EXISTS: &str = "User with this email already exists";
    /// Login with an unknown e-mail or a wrong password.
    pub const INVALID_CREDENTIALS: &str = "Invalid credentials";
    /// A protected endpoint called without a bearer token.
    pub const TOKEN_MISSING: &str = "Token is missing";
    /// A bearer token past its expiry time.
    pub const TOKEN_EXPIRED: &str = "Token has expired";
    /// A bearer token that is malformed or has a bad signature.
    pub const TOKEN_INVALID: &str = "Token is invalid; log in again to get a new one";
    /// A well-signed token whose user is gone, for example after the database was reset.
    pub const TOKEN_USER_UNKNOWN: &str =
        "Token is invalid: its user no longer exists; log in again";
    /// Instance registration without one of the required fields.
    pub const INSTANCE_FIELDS_REQUIRED: &str =
        "instance_id, instance_type, and region are required";
    /// Instance registration with an id that is taken.
    pub const INSTANCE_EXISTS: &str = "Instance already registered";
    /// An instance id that is not registered.
    pub const INSTANCE_NOT_FOUND: &str = "Instance not found";
    /// An instance registered by another user.
    pub const NOT_OWNER: &str = "Unauthorized: You don't own this instance";
    /// Start monitoring an instance that is monitored.
    pub const ALREADY_MONITORING: &str = "Monitoring is already active for this instance";
    /// Stop monitoring an instance that is not monitored.
    pub const NOT_MONITORING: &str = "Monitoring is not active for this instance";
}

/// Body of the 503 response while the store is unreachable. The store's own message stays in
/// the log, because it may name the database host.
pub const DATABASE_UNAVAILABLE: &str =
    "Database unavailable: the server cannot reach its database; retry later";

/// A failed request: the HTTP status and the message of the JSON error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// The `error` field of the response body.
    pub message: String,
}

impl ApiError {
    /// Builds an error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or a value is invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: the caller may not touch this resource.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: the resource does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the resource exists already.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500 with a generic message; the cause is logged, not sent, because it may describe
    /// server internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        error!(%cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error; the server log has the details",
        )
    }

    /// Maps a store failure that the handler did not expect: an unreachable database
    /// becomes 503 so that clients retry, anything else 500.
    pub fn from_store(cause: store::Error) -> ApiError {
        match cause {
            store::Error::Unavailable { .. } => {
                error!(%cause, "database unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE)
            }
            other => ApiError::internal(&other),
        }
    }
}

// Through warp's blanket `From<T: Reject> for Rejection`, `?` turns an `ApiError` into a
// rejection in handlers.
impl Reject for ApiError {}

/// Builds the JSON error response for `status` and `message`.
pub fn error_reply(status: StatusCode, message: &str) -> warp::reply::Response {
    let body = warp::reply::json(&ErrorBody {
        error: message.to_owned(),
    });
    warp::reply::with_status(body, status).into_response()
}

/// Turns every rejection, from the handlers or from warp's own filters, into a JSON error.
pub async fn handle_rejection(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(error) = rejection.find::<ApiError>() {
        return Ok(error_reply(error.status, &error.message));
    }
    let (status, message) = warp_rejection_message(&rejection);
    Ok(error_reply(status, &message))
}

fn warp_rejection_message(rejection: &Rejection) -> (StatusCode, String) {
    use warp::reject;

    if rejection.is_not_found() {
        return (
            StatusCode::NOT_FOUND,
            "Not found: no such endpoint; the API is described at /api/docs".to_owned(),
        );
    }
    if rejection.find::<reject::MethodNotAllowed>().is_some() {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed for this endpoint; the API is described at /api/docs".to_owned(),
        );
    }
    if let Some(cors) = rejection.find::<warp::filters::cors::CorsForbidden>() {
        return (
            StatusCode::FORBIDDEN,
            format!("CORS request rejected: {cors}"),
        );
    }
    if let Some(header) = rejection.find::<reject::InvalidHeader>() {
        return (StatusCode::BAD_REQUEST, format!("Invalid header: {header}"));
    }
    if let Some(query) = rejection.find::<reject::InvalidQuery>() {
        return (
            StatusCode::BAD_REQUEST,
            format!("Invalid query string: {query}"),
        );
    }
    error!(?rejection, "unhandled rejection");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal server error; the server log has the details".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn custom_error_keeps_status_and_message() {
        let rejection: Rejection = ApiError::not_found(messages::INSTANCE_NOT_FOUND).into();
        let response = handle_rejection(rejection).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn unknown_route_is_json_404() {
        let response = handle_rejection(warp::reject::not_found())
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let content_type = response.headers().get("content-type").expect("header");
        assert_eq!(content_type, "application/json");
    }
}
