//! Mapping of sqlx errors onto [`store::Error`].

use autoscaler_core::store::{self, Error};

/// SQLSTATE codes that mean the server cannot serve requests right now, although the
/// connection was established: `admin_shutdown`, `crash_shutdown`, `cannot_connect_now` and
/// `too_many_connections`. Class `08` (connection exception) is matched by prefix.
const UNAVAILABLE_CODES: [&str; 4] = ["57P01", "57P02", "57P03", "53300"];

/// Converts a sqlx error into a store error; `operation` names what failed, for example
/// `reading instance windows`.
///
/// Connection failures, timeouts and pool timeouts become [`Error::Unavailable`]; everything
/// else, including a failed TLS handshake, becomes [`Error::Backend`], because retrying does
/// not fix a server without TLS or a rejected certificate. Callers map unique and foreign-key violations to
/// [`Error::Conflict`] and [`Error::NotFound`] themselves, because only they know the key.
pub(super) fn classify(operation: &str, error: sqlx::Error) -> Error {
    if is_unavailable(&error) {
        return Error::Unavailable {
            message: format!("{operation} failed: PostgreSQL is unreachable: {error}"),
            source: Some(Box::new(error)),
        };
    }
    Error::Backend {
        message: format!("{operation} failed: {error}"),
        source: Some(Box::new(error)),
    }
}

/// Returns a closure for `map_err` that classifies with [`classify`].
pub(super) fn failed(operation: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |error| classify(operation, error)
}

/// Returns whether retrying later may succeed because the server or the network is down.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code.starts_with("08") || UNAVAILABLE_CODES.contains(&&*code)),
        _ => false,
    }
}

/// Returns whether `error` is a unique violation.
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|database| database.is_unique_violation())
}

/// Returns whether `error` is a foreign-key violation.
pub(super) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|database| database.is_foreign_key_violation())
}

/// Builds the error for a stored value that does not decode into its Rust type.
pub(super) fn corrupt(
    what: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    store::Error::backend(format!("corrupt {what} in PostgreSQL"), source)
}
