//! The autoscaler's HTTP server as a library: settings, authentication and request checks.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod errors;
pub mod logging;
pub mod models;
pub mod validate;

pub use config::Config;
