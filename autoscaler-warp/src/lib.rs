//! The autoscaler's HTTP server as a library: configuration, the API and the background ticks.
//!
//! [`run`] opens the store, starts the collection and decision ticks of
//! [`autoscaler_core::Scheduler`] and serves the API until the shutdown token is cancelled.
//! The `autoscaler-server` binary parses [`Config`], installs logging and calls it.
//!
//! # Layout
//!
//! | module | contents |
//! |---|---|
//! | [`config`] | flags and environment variables |
//! | [`auth`] | argon2id password hashing, JWT tokens, the signing secret |
//! | [`models`] | request and response bodies with their OpenAPI schemas |
//! | [`validate`] | checks of request values |
//! | [`filters`] | routes, body parsing, CORS, request log |
//! | [`handlers`] | one function per endpoint |
//! | [`errors`] | the JSON error body and the rejection handler |
//! | [`openapi`] | the OpenAPI document and Swagger UI |
//! | [`logging`] | stdout and daily log files |

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod errors;
pub mod filters;
pub mod handlers;
pub mod logging;
pub mod models;
pub mod openapi;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use autoscaler_core::cloudwatch::{CloudWatchCollector, InvalidCloudWatchConfig};
use autoscaler_core::{
    Collector, InvalidPolicy, MockCollector, Policy, RoutingCollector, Scheduler, Store,
    SystemClock,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::Config;

use crate::auth::{AuthError, Passwords, SecretError, Tokens};
use crate::handlers::{AppState, Backend, Limits};

/// A failure to start the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A policy setting is out of range.
    #[error("invalid setting: {0}")]
    Policy(#[from] InvalidPolicy),
    /// A CloudWatch setting is out of range.
    #[error("invalid setting: {0}")]
    CloudWatch(#[from] InvalidCloudWatchConfig),
    /// The lease is too short for the tick periods.
    #[error("invalid setting: {0}")]
    Lease(#[from] config::LeaseTooShort),
    /// The data directory could not be created.
    #[error("creating the data directory {path} failed: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The token signing secret is missing or unreadable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Password hashing or token signing could not be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The database could not be opened.
    #[error("opening the database failed: {0}")]
    Store(String),
    /// The listen address could not be bound.
    #[error("listening on {address} failed: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the server until `shutdown` is cancelled, then stops the ticks, lets in-flight requests
/// finish and returns.
///
/// The bound address is logged as `listening` with an `address` field, so a caller that binds
/// port 0 can find the chosen port.
///
/// # Errors
///
/// Returns [`StartError`] when a setting is invalid, or when the database, the secret or the
/// listen address cannot be set up. Once serving, it returns `Ok` at shutdown.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    let (state, scheduler) = build(&config).await?;
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind {
            address: config.bind,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(config.bind);
    info!(%address, "listening");

    let ticks = tokio::spawn(scheduler.run(shutdown.clone()));
    warp::serve(filters::routes(state))
        .incoming(listener)
        .graceful(shutdown.clone().cancelled_owned())
        .run()
        .await;

    shutdown.cancel();
    if let Err(cause) = ticks.await {
        warn!(%cause, "scheduler task ended abnormally");
    }
    info!("server stopped");
    Ok(())
}

/// Builds the handlers' state and the scheduler: policy, data directory, signing secret,
/// store and collector.
async fn build(config: &Config) -> Result<(Arc<AppState>, Arc<Scheduler>), StartError> {
    let policy = config.policy()?;
    config.validate_lease()?;
    info!(
        window = ?policy.window,
        cooldown = ?policy.cooldown,
        min_level = policy.min_level,
        max_level = policy.max_level,
        recommend_only = policy.recommend_only,
        "decision policy"
    );
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    }
    let secret = auth::signing_secret(
        config.jwt_secret_key.as_deref(),
        config.database_url.is_some(),
        &config.jwt_secret_path(),
    )?;
    let store = open_store(config).await?;
    let collector = build_collector(config, &policy).await?;

    let scheduler_config = config.scheduler();
    match scheduler_config.retention {
        Some(retention) => info!(
            ?retention,
            purge_every = ?scheduler_config.purge_every,
            purge_batch = scheduler_config.purge_batch,
            "samples and decisions older than the retention period are deleted"
        ),
        None => info!("retention is off: samples and decisions are kept forever"),
    }
    let backend = if config.database_url.is_some() {
        Backend::Postgresql
    } else {
        Backend::Embedded
    };
    info!(
        replica_id = %scheduler_config.holder,
        backend = backend.as_str(),
        lease = ?scheduler_config.lease,
        "replica started"
    );
    let scheduler = Arc::new(Scheduler::new(
        Arc::clone(&store),
        collector,
        Arc::new(SystemClock),
        policy.clone(),
        scheduler_config,
    ));
    let concurrency = std::thread::available_parallelism().map_or(1, |n| n.get());
    let state = Arc::new(AppState {
        store,
        passwords: Passwords::new(concurrency).await?,
        tokens: Tokens::new(&secret)?,
        policy,
        scheduler: Arc::clone(&scheduler),
        backend,
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            max_simulated_samples: config.max_simulated_samples,
            max_pushed_samples: config.max_pushed_samples,
        },
    });
    Ok((state, scheduler))
}

/// Opens the store the configuration selects: the embedded database file in the data
/// directory, or PostgreSQL when a database URL is set.
///
/// # Errors
///
/// Returns [`StartError::Store`] with the backend's message, for example when another process
/// has the database file open.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    if let Some(url) = &config.database_url {
        let store = autoscaler_store::PgStore::connect(url)
            .await
            .map_err(|cause| StartError::Store(format!("PostgreSQL: {cause}")))?;
        info!("PostgreSQL database opened and migrated");
        return Ok(Arc::new(store));
    }
    let path = config.database_path();
    let store = autoscaler_store::RedbStore::open(&path)
        .map_err(|cause| StartError::Store(format!("{}: {cause}", path.display())))?;
    info!(path = %path.display(), "embedded database opened");
    Ok(Arc::new(store))
}

/// Builds the metric source: generated samples for mock instances, Amazon CloudWatch for EC2
/// instances. Credentials, and the endpoint override `AWS_ENDPOINT_URL`, come from the standard
/// AWS sources; each request goes to the region stored on its instance.
///
/// # Errors
///
/// Returns [`StartError::CloudWatch`] when a CloudWatch setting is out of range.
pub async fn build_collector(
    config: &Config,
    policy: &Policy,
) -> Result<Arc<dyn Collector>, StartError> {
    let cloudwatch =
        CloudWatchCollector::from_env(config.cloudwatch(policy.window), policy.window).await?;
    let mock = Box::new(MockCollector::new());
    Ok(Arc::new(RoutingCollector::new(
        mock,
        Some(Box::new(cloudwatch)),
    )))
}
