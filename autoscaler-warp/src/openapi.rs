//! The OpenAPI document at `/api/openapi.json` and Swagger UI at `/api/docs`.
//!
//! Swagger UI's files are compiled into the binary (utoipa-swagger-ui's `vendored` feature),
//! so nothing is downloaded at build or run time.

use std::sync::Arc;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::filters::BoxedFilter;
use warp::http::{Uri, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::errors::ApiError;
use crate::handlers;
use crate::models;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cloud Resource Autoscaler API",
        description = "Monitors EC2 and mock instances, decides every tick whether to scale \
            up or down, and records each decision with its evidence. Log in, then use \
            \"Authorize\" with the token.",
    ),
    paths(
        handlers::health,
        handlers::status,
        handlers::users::register,
        handlers::users::login,
        handlers::users::me,
        handlers::instances::register_instance,
        handlers::instances::list_instances,
        handlers::instances::start_monitoring,
        handlers::instances::stop_monitoring,
        handlers::metrics::metrics,
        handlers::metrics::decisions,
        handlers::metrics::simulate,
        handlers::metrics::push,
    ),
    components(schemas(
        models::ErrorBody,
        models::MessageResponse,
        models::CollectionErrorView,
        models::InstantSimulationResponse,
        models::ProlongedSimulationResponse,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and replica status"),
        (name = "auth", description = "Users and login tokens"),
        (name = "instances", description = "Instances and their monitoring"),
        (name = "metrics", description = "Samples, simulated load, pushed samples and decisions"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer_auth` scheme the protected operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "The token from POST /api/auth/login, without 'Bearer '",
            ))
            .build();
        components.add_security_scheme("bearer_auth", SecurityScheme::Http(scheme));
    }
}

/// Serves the OpenAPI document and Swagger UI.
pub fn routes() -> BoxedFilter<(Response,)> {
    let document = Arc::new(ApiDoc::openapi());
    let openapi = warp::path!("api" / "openapi.json")
        .and(warp::get())
        .map(move || warp::reply::json(document.as_ref()).into_response());

    let config = Arc::new(
        utoipa_swagger_ui::Config::from(OPENAPI_PATH)
            .persist_authorization(true)
            .try_it_out_enabled(true),
    );
    let docs = warp::path("api")
        .and(warp::path("docs"))
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .and(warp::any().map(move || Arc::clone(&config)))
        .and_then(swagger_file);
    openapi.or(docs).unify().boxed()
}

async fn swagger_file(
    full: warp::path::FullPath,
    tail: warp::path::Tail,
    config: Arc<utoipa_swagger_ui::Config<'static>>,
) -> Result<Response, Rejection> {
    // Swagger UI loads its files relative to the page, so the page needs the trailing slash.
    if full.as_str() == "/api/docs" {
        return Ok(warp::redirect::found(Uri::from_static("/api/docs/")).into_response());
    }
    match utoipa_swagger_ui::serve(tail.as_str(), config) {
        Ok(Some(file)) => {
            let mut response = Response::new(file.bytes.into_owned().into());
            let headers = response.headers_mut();
            if let Ok(value) = header::HeaderValue::from_str(&file.content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            if file.gzpipped {
                headers.insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            Ok(response)
        }
        Ok(None) => Err(ApiError::not_found(format!(
            "Not found: Swagger UI has no file {}",
            tail.as_str()
        ))
        .into()),
        Err(cause) => Err(ApiError::internal(&cause).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_declares_bearer_auth_and_paths() {
        let document = ApiDoc::openapi();
        let schemes = &document
            .components
            .as_ref()
            .expect("components")
            .security_schemes;
        assert!(schemes.contains_key("bearer_auth"));
        assert_eq!(document.paths.paths.len(), 12);
        assert!(document.paths.paths.contains_key("/api/instances/"));
    }
}
