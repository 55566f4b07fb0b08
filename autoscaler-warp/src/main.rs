//! `autoscaler-server`: reads the configuration, installs logging, and runs the server until
//! SIGINT or SIGTERM.

use std::process::ExitCode;

use autoscaler_warp::{Config, logging};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    match dotenvy::dotenv() {
        Err(error) if !error.not_found() => {
            eprintln!("autoscaler-server: reading .env failed: {error}");
            return ExitCode::FAILURE;
        }
        _ => {}
    }
    let config = Config::parse();
    let _log_guard = match logging::init(&config.log_dir) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("autoscaler-server: {error}");
            return ExitCode::FAILURE;
        }
    };

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match autoscaler_warp::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(cause) => {
            error!(%cause, "server could not start");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let signal = wait_for_signal().await;
    match signal {
        Ok(name) => info!(signal = name, "shutting down"),
        Err(cause) => error!(%cause, "listening for signals failed; shutting down"),
    }
    shutdown.cancel();
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => Ok("SIGINT"),
        _ = terminate.recv() => Ok("SIGTERM"),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    tokio::signal::ctrl_c().await?;
    Ok("Ctrl-C")
}
