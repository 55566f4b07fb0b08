//! Registration, login and the current user.

use std::sync::Arc;

use autoscaler_core::store::{self, NewUser, User};
use chrono::Utc;
use tracing::info;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{AppState, json_reply};
use crate::errors::{ApiError, messages};
use crate::models::{
    BodyErrors, CredentialsRequest, ErrorBody, LoginResponse, MeResponse, RegisterResponse,
    ServerErrors, TokenErrors, format_timestamp,
};
use crate::validate;

/// Registers a user.
///
/// The e-mail is compared without regard to case; the password needs at least 8 characters.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "auth",
    request_body = CredentialsRequest,
    responses(
        (status = 201, description = "User registered", body = RegisterResponse),
        (status = 400, description = "Missing field, invalid e-mail, short password or bad JSON",
            body = ErrorBody, examples(
                ("missing" = (value = json!({"error": "Email and password are required"}))),
                ("short password" = (value = json!(
                    {"error": "Password must be at least 8 characters (got 5)"}))),
            )),
        (status = 409, description = "E-mail taken", body = ErrorBody,
            example = json!({"error": "User with this email already exists"})),
        ServerErrors,
        BodyErrors,
    )
)]
pub async fn register(
    state: Arc<AppState>,
    request: CredentialsRequest,
) -> Result<Response, Rejection> {
    let (email, password) =
        validate::credentials(request.email, request.password).map_err(ApiError::bad_request)?;
    validate::email(&email).map_err(ApiError::bad_request)?;
    validate::password(&password).map_err(ApiError::bad_request)?;

    let existing = state.store.user_by_email(&email).await;
    if existing.map_err(ApiError::from_store)?.is_some() {
        return Err(ApiError::conflict(messages::USER_EXISTS).into());
    }
    let password_hash = state
        .passwords
        .hash(password)
        .await
        .map_err(|cause| ApiError::internal(&cause))?;
    let user = match state
        .store
        .create_user(NewUser {
            email,
            password_hash,
        })
        .await
    {
        Ok(user) => user,
        Err(store::Error::Conflict { .. }) => {
            return Err(ApiError::conflict(messages::USER_EXISTS).into());
        }
        Err(cause) => return Err(ApiError::from_store(cause).into()),
    };
    info!(user_id = %user.id, "user registered");
    let body = RegisterResponse {
        message: "User registered successfully".to_owned(),
        user_id: user.id,
    };
    Ok(json_reply(StatusCode::CREATED, &body))
}

/// Logs in and returns a bearer token valid for 24 hours.
///
/// An unknown e-mail and a wrong password get the same response after the same work.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Missing field or bad JSON", body = ErrorBody,
            example = json!({"error": "Email and password are required"})),
        (status = 401, description = "Unknown e-mail or wrong password", body = ErrorBody,
            example = json!({"error": "Invalid credentials"})),
        ServerErrors,
        BodyErrors,
    )
)]
pub async fn login(
    state: Arc<AppState>,
    request: CredentialsRequest,
) -> Result<Response, Rejection> {
    let (email, password) =
        validate::credentials(request.email, request.password).map_err(ApiError::bad_request)?;
    let user = state
        .store
        .user_by_email(&email)
        .await
        .map_err(ApiError::from_store)?;
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    let matches = state
        .passwords
        .verify(password, stored_hash)
        .await
        .map_err(|cause| ApiError::internal(&cause))?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(ApiError::unauthorized(messages::INVALID_CREDENTIALS).into());
    };
    let token = state
        .tokens
        .issue(user.id, Utc::now())
        .map_err(|cause| ApiError::internal(&cause))?;
    let body = LoginResponse {
        message: "Login successful".to_owned(),
        token,
    };
    Ok(json_reply(StatusCode::OK, &body))
}

/// Returns the logged-in user with counts of their instances.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The user", body = MeResponse),
        TokenErrors,
        ServerErrors,
    )
)]
pub async fn me(state: Arc<AppState>, user: User) -> Result<Response, Rejection> {
    let instances = state
        .store
        .instances_by_owner(user.id)
        .await
        .map_err(ApiError::from_store)?;
    let body = MeResponse {
        user_id: user.id,
        email: user.email,
        created_at: format_timestamp(user.created_at),
        instance_count: instances.len(),
        monitoring_count: instances.iter().filter(|i| i.is_monitoring).count(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}
