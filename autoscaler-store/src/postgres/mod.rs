//! The PostgreSQL backend, through sqlx.
//!
//! The schema lives in `migrations/` beside this crate's manifest and is applied by
//! [`PgStore::connect`] and [`PgStore::from_pool`]. sqlx records the applied versions in
//! `_sqlx_migrations` and holds an advisory lock while it migrates, so servers that start
//! together apply each migration once.
//!
//! `timestamptz` keeps microseconds, so timestamps are truncated to whole microseconds on the
//! way in: two samples of one instance less than a microsecond apart count as one.
//!
//! Any number of server replicas can share one database: [`Store::claim_monitored`] hands
//! each monitored instance to one replica at a time through leases stored in `instances`.

mod error;
mod leases;
mod rows;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use autoscaler_core::Sample;
use autoscaler_core::store::{
    CollectionError, DecisionRecord, Error, Instance, NewDecisionRecord, NewInstance, NewUser,
    Result, Store, StoredSample, User,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use tracing::debug;
use uuid::Uuid;

use self::error::{classify, failed, is_foreign_key_violation, is_unique_violation};
use self::rows::{decision_columns, instance_columns, sample_columns, to_micros, user_columns};

/// The window read, shared by [`Store::windows`] and [`PgStore::explain_windows`].
///
/// PostgreSQL reads it with range scans of `samples_instance_taken_at_key` when few instances
/// are listed, and of `samples_taken_at` when most of them are.
macro_rules! windows_query {
    () => {
        concat!(
            "SELECT ",
            sample_columns!(),
            " FROM samples WHERE instance = ANY($1) AND taken_at > $2 AND taken_at <= $3 \
             ORDER BY instance, taken_at"
        )
    };
}

/// The migrations under `migrations/`, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!();

/// How long a call waits for a pooled connection, including opening a new one, before it
/// fails with [`Error::Unavailable`]; short, so that an outage shows quickly.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections [`PgStore::connect`] opens at most.
pub const MAX_CONNECTIONS: u32 = 10;

/// A [`Store`] in a PostgreSQL database.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` and applies pending migrations.
    ///
    /// `url` has the form `postgres://user:password@host:port/database?sslmode=require`;
    /// `postgresql://` works as well. With `sslmode=require` the connection is encrypted with
    /// rustls. As in libpq, that mode checks the server certificate only when `sslrootcert`
    /// names a CA file. `verify-ca` and `verify-full` check it against `sslrootcert` or the
    /// bundled web PKI roots.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when no connection can be opened within [`ACQUIRE_TIMEOUT`];
    /// [`Error::Backend`] for an invalid URL, a rejected login or a failed migration.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let options = connect_options(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(failed("connecting to PostgreSQL"))?;
        PgStore::from_pool(pool).await
    }

    /// Wraps an existing pool and applies pending migrations to its database.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the database cannot be reached; [`Error::Backend`] when a
    /// migration fails or the database contains migrations this build does not know.
    pub async fn from_pool(pool: PgPool) -> Result<PgStore> {
        MIGRATOR.run(&pool).await.map_err(migration_failed)?;
        debug!("PostgreSQL schema is up to date");
        Ok(PgStore { pool })
    }

    /// Returns the connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Returns how many replicas have claimed instances (see [`Store::claim_monitored`]) and
    /// whose claims have not ended at `now`.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the database cannot be reached.
    pub async fn live_replicas(&self, now: DateTime<Utc>) -> Result<u64> {
        leases::live_replicas(&self.pool, now).await
    }

    /// Returns PostgreSQL's plan (`EXPLAIN`) for the query behind [`Store::windows`], one
    /// line per plan node, to check which index a window read uses.
    ///
    /// # Errors
    ///
    /// As [`Store::windows`].
    pub async fn explain_windows(
        &self,
        instances: &[Uuid],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<String> {
        let lines: Vec<String> = sqlx::query_scalar(concat!("EXPLAIN ", windows_query!()))
            .bind(instances)
            .bind(to_micros(since))
            .bind(to_micros(until))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("explaining the window query"))?;
        Ok(lines.join("\n"))
    }
}

/// Parses a connection URL, accepting the `postgres` and `postgresql` schemes.
fn connect_options(url: &str) -> Result<PgConnectOptions> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    let known = scheme.is_some_and(|scheme| {
        scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
    });
    if !known {
        // The URL itself is not repeated because it may contain a password.
        return Err(Error::Backend {
            message: INVALID_SCHEME.to_owned(),
            source: None,
        });
    }
    PgConnectOptions::from_str(url)
        .map_err(|error| Error::backend(format!("invalid PostgreSQL URL: {error}"), error))
}

const INVALID_SCHEME: &str = "invalid PostgreSQL URL: expected \
    postgres://user:password@host:port/database or postgresql://user:password@host:port/database";

fn migration_failed(error: MigrateError) -> Error {
    match error {
        MigrateError::Execute(error) => classify("applying migrations", error),
        MigrateError::ExecuteMigration(error, version) => {
            classify(&format!("applying migration {version}"), error)
        }
        other => Error::backend(format!("applying migrations failed: {other}"), other),
    }
}

/// Converts a row limit to the `bigint` that `LIMIT` takes.
fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Converts a scale level to the `bigint` it is stored as.
fn level(value: u32) -> i64 {
    i64::from(value)
}

#[async_trait]
impl Store for PgStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        let row = sqlx::query(concat!(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING ",
            user_columns!()
        ))
        .bind(Uuid::new_v4())
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(to_micros(Utc::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::Conflict {
                    entity: "user",
                    key: user.email.clone(),
                }
            } else {
                classify("creating a user", error)
            }
        })?;
        rows::user(&row)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading a user by e-mail"))?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading a user"))?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn create_instance(&self, instance: NewInstance) -> Result<Instance> {
        let row = sqlx::query(concat!(
            "INSERT INTO instances \
             (id, owner_id, instance_id, instance_type, region, is_mock, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            instance_columns!()
        ))
        .bind(Uuid::new_v4())
        .bind(instance.owner_id)
        .bind(&instance.instance_id)
        .bind(&instance.instance_type)
        .bind(&instance.region)
        .bind(instance.is_mock)
        .bind(to_micros(Utc::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                Error::Conflict {
                    entity: "instance",
                    key: instance.instance_id.clone(),
                }
            } else if is_foreign_key_violation(&error) {
                Error::NotFound {
                    entity: "user",
                    key: instance.owner_id.to_string(),
                }
            } else {
                classify("creating an instance", error)
            }
        })?;
        rows::instance(&row)
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            instance_columns!(),
            " FROM instances WHERE instance_id = $1"
        ))
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading an instance"))?;
        row.as_ref().map(rows::instance).transpose()
    }

    async fn instances_by_owner(&self, owner_id: Uuid) -> Result<Vec<Instance>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            instance_columns!(),
            " FROM instances WHERE owner_id = $1 ORDER BY created_at, seq"
        ))
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading a user's instances"))?;
        rows.iter().map(rows::instance).collect()
    }

    async fn set_monitoring(&self, instance_id: &str, monitoring: bool) -> Result<Instance> {
        let row = sqlx::query(concat!(
            "UPDATE instances SET is_monitoring = $2, \
             lease_holder = CASE WHEN $2 THEN lease_holder END, \
             lease_until = CASE WHEN $2 THEN lease_until END \
             WHERE instance_id = $1 AND is_monitoring <> $2 RETURNING ",
            instance_columns!()
        ))
        .bind(instance_id)
        .bind(monitoring)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("setting monitoring"))?;
        if let Some(row) = row {
            return rows::instance(&row);
        }
        // No row changed: either the instance is unknown or it is already in that state.
        let exists = sqlx::query("SELECT 1 FROM instances WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("reading an instance"))?
            .is_some();
        let (entity, key) = (
            if exists { "monitoring" } else { "instance" },
            instance_id.to_owned(),
        );
        Err(if exists {
            Error::Conflict { entity, key }
        } else {
            Error::NotFound { entity, key }
        })
    }

    async fn monitored_instances(&self) -> Result<Vec<Instance>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            instance_columns!(),
            " FROM instances WHERE is_monitoring ORDER BY seq"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading monitored instances"))?;
        rows.iter().map(rows::instance).collect()
    }

    async fn set_collection_error(&self, id: Uuid, error: Option<CollectionError>) -> Result<()> {
        let (message, at) = match error {
            Some(error) => (Some(error.message), Some(to_micros(error.at))),
            None => (None, None),
        };
        let updated = sqlx::query(
            "UPDATE instances SET collection_error = $2, collection_error_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(message)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(failed("recording a collection error"))?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound {
                entity: "instance",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    async fn append_samples(&self, batch: &[(Uuid, Sample)]) -> Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        let columns = SampleColumns::new(batch);
        // One statement for the whole batch, so a missing instance fails the foreign key and
        // stores nothing. A stored (instance, timestamp) keeps its row, and of twins within
        // the batch the first one is inserted.
        let inserted = sqlx::query(
            "INSERT INTO samples \
             (id, instance, taken_at, cpu_utilization, memory_usage, network_in, network_out) \
             SELECT DISTINCT ON (instance, taken_at) \
             id, instance, taken_at, cpu_utilization, memory_usage, network_in, network_out \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], \
             $4::float8[], $5::float8[], $6::float8[], $7::float8[]) WITH ORDINALITY \
             AS batch (id, instance, taken_at, cpu_utilization, memory_usage, network_in, \
             network_out, position) \
             ORDER BY instance, taken_at, position \
             ON CONFLICT (instance, taken_at) DO NOTHING",
        )
        .bind(&columns.ids)
        .bind(&columns.instances)
        .bind(&columns.taken_at)
        .bind(&columns.cpu)
        .bind(&columns.memory)
        .bind(&columns.network_in)
        .bind(&columns.network_out)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(done) => Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX)),
            Err(error) if is_foreign_key_violation(&error) => {
                Err(self.missing_instance(&columns.instances).await)
            }
            Err(error) => Err(classify("appending samples", error)),
        }
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
        let rows = sqlx::query(windows_query!())
            .bind(instances)
            .bind(to_micros(since))
            .bind(to_micros(until))
            .fetch_all(&self.pool)
            .await
            .map_err(failed("reading instance windows"))?;
        let mut windows: HashMap<Uuid, Vec<StoredSample>> = HashMap::new();
        for row in &rows {
            let sample = rows::sample(row)?;
            windows.entry(sample.instance).or_default().push(sample);
        }
        Ok(windows)
    }

    async fn recent_samples(&self, instance: Uuid, limit: usize) -> Result<Vec<StoredSample>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            sample_columns!(),
            " FROM samples WHERE instance = $1 ORDER BY taken_at DESC LIMIT $2"
        ))
        .bind(instance)
        .bind(self::limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading recent samples"))?;
        rows.iter().map(rows::sample).collect()
    }

    async fn record_evaluation(&self, record: NewDecisionRecord) -> Result<DecisionRecord> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(failed("starting a transaction"))?;
        let stored = record_in(&mut transaction, record).await?;
        transaction
            .commit()
            .await
            .map_err(failed("committing a decision"))?;
        Ok(stored)
    }

    async fn recent_decisions(&self, instance: Uuid, limit: usize) -> Result<Vec<DecisionRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM decisions WHERE instance = $1 ORDER BY evaluated_at DESC, seq DESC LIMIT $2"
        ))
        .bind(instance)
        .bind(self::limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading recent decisions"))?;
        rows.iter().map(rows::decision).collect()
    }

    /// Claims for `holder` its fair share of the monitored instances, in one transaction:
    /// renews its leases, releases those above the share and claims free or expired ones
    /// with `FOR UPDATE SKIP LOCKED`. The share is the monitored instances divided by the
    /// replicas whose last claim has not ended, rounded up.
    async fn claim_monitored(
        &self,
        holder: Uuid,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Instance>> {
        leases::claim(&self.pool, holder, lease, now).await
    }

    async fn release_claims(&self, holder: Uuid) -> Result<()> {
        leases::release(&self.pool, holder).await
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<usize> {
        let cutoff = to_micros(cutoff);
        let batch = limit(batch);
        // Each statement deletes at most `batch` rows, so a call holds its row locks briefly
        // however much history has piled up. The next retention tick deletes the rest.
        let samples = sqlx::query(
            "DELETE FROM samples WHERE id = ANY(ARRAY( \
             SELECT id FROM samples WHERE taken_at < $1 ORDER BY taken_at LIMIT $2))",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(&self.pool)
        .await
        .map_err(failed("deleting old samples"))?;
        let decisions = sqlx::query(
            "DELETE FROM decisions WHERE id = ANY(ARRAY( \
             SELECT id FROM decisions WHERE evaluated_at < $1 ORDER BY evaluated_at LIMIT $2))",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(&self.pool)
        .await
        .map_err(failed("deleting old decisions"))?;
        let deleted = samples.rows_affected() + decisions.rows_affected();
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}

impl PgStore {
    /// Builds the error for a batch that failed its foreign key: names an instance of
    /// `instances` that does not exist.
    async fn missing_instance(&self, instances: &[Uuid]) -> Error {
        let missing: Result<Option<Uuid>, sqlx::Error> = sqlx::query_scalar(
            "SELECT wanted.id FROM UNNEST($1::uuid[]) AS wanted (id) \
             WHERE NOT EXISTS (SELECT 1 FROM instances WHERE instances.id = wanted.id) LIMIT 1",
        )
        .bind(instances)
        .fetch_optional(&self.pool)
        .await;
        match missing {
            Ok(id) => Error::NotFound {
                entity: "instance",
                key: id.map_or_else(|| "unknown".to_owned(), |id| id.to_string()),
            },
            Err(error) => classify("looking up the instances of a sample batch", error),
        }
    }
}

/// A sample batch split into one array per column, for `UNNEST`.
struct SampleColumns {
    ids: Vec<Uuid>,
    instances: Vec<Uuid>,
    taken_at: Vec<DateTime<Utc>>,
    cpu: Vec<f64>,
    memory: Vec<Option<f64>>,
    network_in: Vec<Option<f64>>,
    network_out: Vec<Option<f64>>,
}

impl SampleColumns {
    fn new(batch: &[(Uuid, Sample)]) -> SampleColumns {
        SampleColumns {
            ids: batch.iter().map(|_| Uuid::new_v4()).collect(),
            instances: batch.iter().map(|(instance, _)| *instance).collect(),
            taken_at: batch
                .iter()
                .map(|(_, s)| to_micros(s.timestamp()))
                .collect(),
            cpu: batch.iter().map(|(_, s)| s.cpu_utilization()).collect(),
            memory: batch.iter().map(|(_, s)| s.memory_usage()).collect(),
            network_in: batch.iter().map(|(_, s)| s.network_in()).collect(),
            network_out: batch.iter().map(|(_, s)| s.network_out()).collect(),
        }
    }
}

/// Records `record` inside `transaction`: moves the scale state if it still equals
/// `record.expected`, stores the decision and flags the decided-on sample.
///
/// The conditional `UPDATE` is the guard against double application. Of two transactions
/// that race with the same expected state, the second waits for the first's row lock, then
/// PostgreSQL re-checks its `WHERE` against the committed row, finds the state moved and
/// updates nothing, so the second one returns [`Error::Conflict`].
async fn record_in(
    connection: &mut PgConnection,
    record: NewDecisionRecord,
) -> Result<DecisionRecord> {
    let record = NewDecisionRecord {
        evaluated_at: to_micros(record.evaluated_at),
        ..record
    };
    let expected = record.expected;
    let next = record.next_state();
    let moved = sqlx::query(
        "UPDATE instances \
         SET scale_level = $5, last_action_at = $6, last_evaluated_sample = $7 \
         WHERE id = $1 AND scale_level = $2 \
         AND last_action_at IS NOT DISTINCT FROM $3 \
         AND last_evaluated_sample IS NOT DISTINCT FROM $4",
    )
    .bind(record.instance)
    .bind(level(expected.level))
    .bind(expected.last_action_at.map(to_micros))
    .bind(expected.last_evaluated_sample.map(to_micros))
    .bind(level(next.level))
    .bind(next.last_action_at.map(to_micros))
    .bind(next.last_evaluated_sample.map(to_micros))
    .execute(&mut *connection)
    .await
    .map_err(failed("moving the scale state"))?;
    if moved.rows_affected() == 0 {
        return Err(state_mismatch(connection, record.instance).await);
    }

    let stored = DecisionRecord::from_new(Uuid::new_v4(), &record);
    sqlx::query(concat!(
        "INSERT INTO decisions (",
        decision_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(stored.id)
    .bind(stored.instance)
    .bind(stored.evaluated_at)
    .bind(stored.decision.as_str())
    .bind(stored.rule.as_str())
    .bind(&stored.reason)
    .bind(Json(&stored.outcome))
    .bind(level(stored.level_before))
    .bind(level(stored.level_after))
    .bind(Json(&stored.evidence))
    .execute(&mut *connection)
    .await
    .map_err(failed("storing a decision"))?;

    if let (true, Some(latest)) = (record.evaluation.flags_latest(), stored.sample()) {
        sqlx::query("UPDATE samples SET outlier_type = $3 WHERE instance = $1 AND taken_at = $2")
            .bind(stored.instance)
            .bind(to_micros(latest.timestamp()))
            .bind(stored.decision.as_str())
            .execute(&mut *connection)
            .await
            .map_err(failed("flagging the decided-on sample"))?;
    }
    Ok(stored)
}

/// Builds the error for a conditional update that matched no row: [`Error::NotFound`] when
/// the instance does not exist, [`Error::Conflict`] when its scale state has moved.
async fn state_mismatch(connection: &mut PgConnection, instance: Uuid) -> Error {
    let exists = sqlx::query("SELECT 1 FROM instances WHERE id = $1")
        .bind(instance)
        .fetch_optional(&mut *connection)
        .await;
    match exists {
        Ok(Some(_)) => Error::Conflict {
            entity: "instance scale state",
            key: instance.to_string(),
        },
        Ok(None) => Error::NotFound {
            entity: "instance",
            key: instance.to_string(),
        },
        Err(error) => classify("reading the scale state", error),
    }
}
