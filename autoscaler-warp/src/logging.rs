//! Logging to stdout and to daily files, for the binary to install.

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{InitError, RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Prefix of the daily log files: `autoscaler-server.YYYY-MM-DD.log`.
pub const LOG_FILE_PREFIX: &str = "autoscaler-server";

/// A failure to install logging.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// The log directory or file could not be created.
    #[error("creating log files in {path} failed: {source}")]
    Files {
        /// The log directory.
        path: String,
        /// The appender's error.
        #[source]
        source: InitError,
    },
    /// Another subscriber is installed already.
    #[error("installing the log subscriber failed: {0}")]
    Install(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber: human-readable lines on stdout (colored on a terminal) and
/// in a file under `log_dir` that rolls over daily. `RUST_LOG` sets the filter; the default is
/// `info`.
///
/// Keep the returned guard alive until exit: dropping it flushes the file writer.
///
/// # Errors
///
/// Returns [`LoggingError`] when the directory cannot be created or a subscriber exists.
pub fn init(log_dir: &Path) -> Result<WorkerGuard, LoggingError> {
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(LOG_FILE_PREFIX)
        .filename_suffix("log")
        .build(log_dir)
        .map_err(|source| LoggingError::Files {
            path: log_dir.display().to_string(),
            source,
        })?;
    let (file_writer, guard) = tracing_appender::non_blocking(appender);

    let (filter, filter_error) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(error) => (
            EnvFilter::new("info"),
            std::env::var("RUST_LOG").ok().map(|_| error),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stdout)
                .with_ansi(std::io::stdout().is_terminal()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(file_writer)
                .with_ansi(false),
        )
        .try_init()?;
    if let Some(error) = filter_error {
        tracing::warn!(%error, "RUST_LOG is invalid; logging at info level");
    }
    Ok(guard)
}
