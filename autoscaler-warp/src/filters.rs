//! Routes: which path and method reach which handler, with authentication, body parsing,
//! CORS and the request log wrapped around them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use autoscaler_core::store::User;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tracing::info;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use crate::errors::{ApiError, handle_rejection};
use crate::handlers::{self, AppState};
use crate::openapi;

/// Builds every route of the API, with JSON errors, open CORS and one log line per request.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let api = health()
        .or(status(&state))
        .unify()
        .or(auth_routes(&state))
        .unify()
        .or(instance_routes(&state))
        .unify()
        .or(metric_routes(&state))
        .unify()
        .or(openapi::routes())
        .unify();
    api.recover(handle_rejection)
        .unify()
        .with(cors())
        .map(Reply::into_response)
        // The CORS wrapper rejects bad preflight requests after the first recovery.
        .recover(handle_rejection)
        .unify()
        .with(warp::log::custom(log_request))
}

fn health() -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path::end())
        .and(warp::get())
        .and_then(handlers::health)
        .boxed()
}

fn status(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "status")
        .and(warp::get())
        .and(with_state(state))
        .and_then(handlers::status)
        .boxed()
}

fn auth_routes(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    let limit = state.limits.max_body_bytes;
    let register = warp::path!("api" / "auth" / "register")
        .and(warp::post())
        .and(with_state(state))
        .and(json_body(limit))
        .and_then(handlers::register);
    let login = warp::path!("api" / "auth" / "login")
        .and(warp::post())
        .and(with_state(state))
        .and(json_body(limit))
        .and_then(handlers::login);
    let me = warp::path!("api" / "auth" / "me")
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and_then(handlers::me);
    register.or(login).unify().or(me).unify().boxed()
}

fn instance_routes(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    // `warp::path!` with `end` accepts the path with and without a trailing slash.
    let register = warp::path!("api" / "instances")
        .and(warp::post())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(state.limits.max_body_bytes))
        .and_then(handlers::register_instance);
    let list = warp::path!("api" / "instances")
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and_then(handlers::list_instances);
    let start = warp::path!("api" / "instances" / String / "monitor" / "start")
        .and(warp::patch())
        .and(with_state(state))
        .and(authenticated(state))
        .and_then(|id, state, user| handlers::start_monitoring(state, user, id));
    let stop = warp::path!("api" / "instances" / String / "monitor" / "stop")
        .and(warp::patch())
        .and(with_state(state))
        .and(authenticated(state))
        .and_then(|id, state, user| handlers::stop_monitoring(state, user, id));
    register
        .or(list)
        .unify()
        .or(start)
        .unify()
        .or(stop)
        .unify()
        .boxed()
}

fn metric_routes(state: &Arc<AppState>) -> BoxedFilter<(Response,)> {
    let limit = state.limits.max_body_bytes;
    let simulate = warp::path!("api" / "metrics" / "simulate")
        .and(warp::post())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(limit))
        .and_then(handlers::simulate);
    let push = warp::path!("api" / "metrics" / "push")
        .and(warp::post())
        .and(with_state(state))
        .and(authenticated(state))
        .and(json_body(limit))
        .and_then(handlers::push);
    let decisions = warp::path!("api" / "metrics" / "decisions" / String)
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and(query_map())
        .and_then(|id, state, user, query| handlers::decisions(state, user, id, query));
    let metrics = warp::path!("api" / "metrics" / String)
        .and(warp::get())
        .and(with_state(state))
        .and(authenticated(state))
        .and(query_map())
        .and_then(|id, state, user, query| handlers::metrics(state, user, id, query));
    simulate
        .or(push)
        .unify()
        .or(decisions)
        .unify()
        .or(metrics)
        .unify()
        .boxed()
}

fn with_state(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone + use<> {
    let state = Arc::clone(state);
    warp::any().map(move || Arc::clone(&state))
}

/// Extracts the user of the bearer token, or rejects with 401.
fn authenticated(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (User,), Error = Rejection> + Clone + use<> {
    warp::header::optional::<String>("authorization")
        .and(with_state(state))
        .and_then(|header, state: Arc<AppState>| async move {
            handlers::authenticate(header, &state)
                .await
                .map_err(Rejection::from)
        })
}

/// Extracts the query string as a map; the handlers parse and check the values.
fn query_map() -> impl Filter<Extract = (HashMap<String, String>,), Error = Rejection> + Clone {
    warp::query::<HashMap<String, String>>()
}

/// Reads a JSON body of at most `limit` bytes into `T`.
///
/// Unlike `warp::body::json`, errors name the field at fault (through `serde_path_to_error`)
/// and bodies without a `Content-Length` are read too, up to the limit.
fn json_body<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::body::stream())
        .and_then(move |content_type: Option<String>, body| async move {
            check_content_type(content_type.as_deref())?;
            let bytes = read_limited(body, limit).await?;
            parse_json(&bytes).map_err(Rejection::from)
        })
}

fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(content_type) = content_type else {
        return Ok(());
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Content-Type must be application/json (got {content_type})"),
    ))
}

async fn read_limited<S, B>(body: S, limit: u64) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|cause| {
            ApiError::bad_request(format!("Reading the request body failed: {cause}"))
        })?;
        if bytes.len().saturating_add(chunk.remaining()) > limit {
            drain(body, limit).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {limit} bytes"),
            ));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            bytes.extend_from_slice(piece);
            let read = piece.len();
            chunk.advance(read);
        }
    }
    Ok(bytes)
}

/// Reads and discards up to `max` more bytes of a rejected body.
///
/// A client that is still sending when the server responds and closes the connection may see
/// a reset instead of the 413 response. Reading a bounded remainder lets most clients finish
/// sending first, while a huge body costs at most `max` more bytes of reading.
async fn drain<S, B>(mut body: std::pin::Pin<&mut S>, max: usize)
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut discarded = 0_usize;
    while discarded <= max {
        match body.next().await {
            Some(Ok(chunk)) => discarded = discarded.saturating_add(chunk.remaining()),
            Some(Err(_)) | None => return,
        }
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "Request body is empty; send a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let cause = error.into_inner();
        if cause.is_syntax() || cause.is_eof() || path == "." {
            ApiError::bad_request(format!("Invalid JSON body: {cause}"))
        } else {
            ApiError::bad_request(format!("Invalid value for {path}: {cause}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|cause| ApiError::bad_request(format!("Invalid JSON body: {cause}")))?;
    Ok(value)
}

fn cors() -> warp::filters::cors::Builder {
    warp::cors()
        .allow_any_origin()
        .allow_methods(["GET", "POST", "PATCH", "OPTIONS"])
        .allow_headers(["authorization", "content-type"])
}

/// Logs method, path, status and latency; never headers, query strings or bodies, which can
/// hold tokens and passwords.
fn log_request(request: warp::log::Info<'_>) {
    info!(
        method = %request.method(),
        path = request.path(),
        status = request.status().as_u16(),
        latency = ?request.elapsed(),
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::CredentialsRequest;

    #[test]
    fn json_errors_name_the_field() {
        let error = parse_json::<CredentialsRequest>(br#"{"email": 5}"#).expect_err("type");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(
            error.message.starts_with("Invalid value for email:"),
            "{}",
            error.message
        );

        let error = parse_json::<CredentialsRequest>(b"{not json").expect_err("syntax");
        assert!(
            error.message.starts_with("Invalid JSON body:"),
            "{}",
            error.message
        );

        let error = parse_json::<CredentialsRequest>(b"  ").expect_err("empty");
        assert_eq!(error.message, "Request body is empty; send a JSON object");

        let error = parse_json::<CredentialsRequest>(b"{} []").expect_err("trailing");
        assert!(
            error.message.starts_with("Invalid JSON body:"),
            "{}",
            error.message
        );
    }

    #[test]
    fn content_type_must_be_json() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        let error = check_content_type(Some("text/plain")).expect_err("not json");
        assert_eq!(error.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
