//! Storage backends for `autoscaler-core`'s [`Store`](autoscaler_core::Store) trait. Each one
//! passes the core crate's conformance suite.
//!
//! | feature | backend |
//! |---|---|
//! | `redb` (default) | [`RedbStore`]: embedded single-file database, no server |
//! | `postgres` | `PgStore`: PostgreSQL through sqlx, migrated at connect time |
//!
//! ```
//! # #[cfg(feature = "redb")]
//! # async fn demo(dir: &std::path::Path) -> Result<(), autoscaler_core::store::Error> {
//! use std::sync::Arc;
//!
//! use autoscaler_core::store::{NewUser, Store};
//! use autoscaler_store::RedbStore;
//!
//! let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("autoscaler.redb"))?);
//! let user = store
//!     .create_user(NewUser {
//!         email: "ops@example.com".into(),
//!         password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
//!     })
//!     .await?;
//! assert_eq!(store.user(user.id).await?, Some(user));
//! # Ok(())
//! # }
//! # #[cfg(feature = "redb")]
//! # {
//! # let dir = std::env::temp_dir().join(format!("autoscaler-store-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).expect("temporary directory");
//! # let runtime = tokio::runtime::Runtime::new().expect("runtime");
//! # runtime.block_on(demo(&dir)).expect("demo");
//! # std::fs::remove_dir_all(&dir).ok();
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "redb")]
mod embedded;
#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "redb")]
pub use embedded::RedbStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
