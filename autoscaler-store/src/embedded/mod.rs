//! The embedded backend: one redb file, no server.

mod metrics;
mod registry;
mod tables;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use autoscaler_core::model::Sample;
use autoscaler_core::store::{
    CollectionError, DecisionRecord, Error, Instance, NewDecisionRecord, NewInstance, NewUser,
    Result, Store, StoredSample, User,
};
use chrono::{DateTime, Utc};
use redb::{Database, DatabaseError, ReadableTable};
use uuid::Uuid;

use self::tables::{Context, META, SCHEMA_VERSION, SCHEMA_VERSION_KEY};

/// A [`Store`] in one redb database file.
///
/// - **Durability.** Every write commits with redb's default durability, so it is on disk
///   when the call returns `Ok`.
/// - **One process.** A `RedbStore` locks its file. Opening the file again, from another process
///   or from this one, fails with [`Error::Unavailable`] until the first store is dropped.
/// - **Concurrency.** Write transactions run one at a time, which makes the uniqueness checks
///   and [`Store::record_evaluation`]'s state check atomic. Reads see the last commit and do not
///   wait for writers.
/// - **Precision.** Times are stored to the microsecond; finer digits are dropped, so two samples
///   of one instance less than a microsecond apart are one sample.
///
/// redb is synchronous, so every call runs on tokio's blocking thread pool and a `RedbStore` must
/// be used inside a tokio runtime. Clones share one open database, which closes when the last
/// clone is dropped.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    location: Arc<str>,
}

impl RedbStore {
    /// Opens the database file at `path`, creating it when it does not exist. The parent
    /// directory must exist.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when another process has the file open; [`Error::Backend`] when the
    /// file cannot be created or read, is not a redb database, or was written by an incompatible
    /// version of this crate.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|cause| open_error(path, cause))?;
        RedbStore::init(db, path.display().to_string())
    }

    /// Creates an empty database that lives in memory and disappears when the store is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the database cannot be initialized.
    pub fn in_memory() -> Result<RedbStore> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .context("creating an in-memory database")?;
        RedbStore::init(db, "memory".to_owned())
    }

    /// Creates every table, so that reads never meet a missing one, and checks the schema version.
    fn init(db: Database, location: String) -> Result<RedbStore> {
        tables::write(&db, |txn| {
            tables::create_all(txn)?;
            let mut meta = txn.open_table(META).context("opening table meta")?;
            let stored = meta
                .get(SCHEMA_VERSION_KEY)
                .context("reading table meta")?
                .map(|version| version.value());
            match stored {
                None => {
                    meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
                        .context("writing table meta")?;
                    Ok(())
                }
                Some(SCHEMA_VERSION) => Ok(()),
                Some(other) => Err(Error::Backend {
                    message: format!(
                        "database {location} has schema version {other}, but this build reads \
                         version {SCHEMA_VERSION}"
                    ),
                    source: None,
                }),
            }
        })?;
        Ok(RedbStore {
            db: Arc::new(db),
            location: location.into(),
        })
    }

    /// Returns the database file's path, or `memory`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `op` on the blocking thread pool, so that redb's synchronous I/O does not stall the
    /// async runtime.
    async fn blocking<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || op(&db))
            .await
            .map_err(|cause| Error::backend("a redb operation panicked or was cancelled", cause))?
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn open_error(path: &Path, cause: DatabaseError) -> Error {
    let path = PathBuf::from(path);
    match cause {
        DatabaseError::DatabaseAlreadyOpen => Error::unavailable(
            format!(
                "another process holds the database file {}; stop that process or use another \
                 data directory",
                path.display()
            ),
            cause,
        ),
        other => Error::backend(
            format!("opening database file {} failed", path.display()),
            other,
        ),
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.blocking(move |db| registry::create_user(db, user))
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.blocking(move |db| registry::user_by_email(db, &email))
            .await
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>> {
        self.blocking(move |db| registry::user(db, id)).await
    }

    async fn create_instance(&self, instance: NewInstance) -> Result<Instance> {
        self.blocking(move |db| registry::create_instance(db, instance))
            .await
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>> {
        let instance_id = instance_id.to_owned();
        self.blocking(move |db| registry::instance(db, &instance_id))
            .await
    }

    async fn instances_by_owner(&self, owner_id: Uuid) -> Result<Vec<Instance>> {
        self.blocking(move |db| registry::instances_by_owner(db, owner_id))
            .await
    }

    async fn set_monitoring(&self, instance_id: &str, monitoring: bool) -> Result<Instance> {
        let instance_id = instance_id.to_owned();
        self.blocking(move |db| registry::set_monitoring(db, &instance_id, monitoring))
            .await
    }

    async fn monitored_instances(&self) -> Result<Vec<Instance>> {
        self.blocking(registry::monitored_instances).await
    }

    async fn set_collection_error(&self, id: Uuid, error: Option<CollectionError>) -> Result<()> {
        self.blocking(move |db| registry::set_collection_error(db, id, error))
            .await
    }

    async fn append_samples(&self, batch: &[(Uuid, Sample)]) -> Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        let batch = batch.to_vec();
        self.blocking(move |db| metrics::append(db, &batch)).await
    }

    async fn windows(
        &self,
        instances: &[Uuid],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<Uuid, Vec<StoredSample>>> {
        if instances.is_empty() {
            return Ok(HashMap::new());
        }
        let instances = instances.to_vec();
        self.blocking(move |db| metrics::windows(db, &instances, since, until))
            .await
    }

    async fn recent_samples(&self, instance: Uuid, limit: usize) -> Result<Vec<StoredSample>> {
        self.blocking(move |db| metrics::recent(db, instance, limit))
            .await
    }

    async fn record_evaluation(&self, record: NewDecisionRecord) -> Result<DecisionRecord> {
        self.blocking(move |db| metrics::record_evaluation(db, record))
            .await
    }

    async fn recent_decisions(&self, instance: Uuid, limit: usize) -> Result<Vec<DecisionRecord>> {
        self.blocking(move |db| metrics::recent_decisions(db, instance, limit))
            .await
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize> {
        if batch == 0 {
            return Ok(0);
        }
        self.blocking(move |db| metrics::purge_before(db, cutoff, batch))
            .await
    }
}
