//! Storage backends for `autoscaler-core`'s [`Store`](autoscaler_core::Store) trait.
//!
//! | feature | backend |
//! |---|---|
//! | `postgres` | `PgStore`: PostgreSQL through sqlx, migrated at connect time |

#![warn(missing_docs)]

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "postgres")]
pub use postgres::PgStore;
