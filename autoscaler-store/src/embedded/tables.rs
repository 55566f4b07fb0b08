//! Table layout, key encoding, record encoding and error mapping of the redb backend.
//!
//! # Layout
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | counter or schema version |
//! | `users` | user id | `User` as JSON |
//! | `user_emails` | e-mail | user id |
//! | `instances` | instance id (internal) | `Instance` as JSON, scale state included |
//! | `instance_ids` | cloud or mock instance id | instance id |
//! | `owner_instances` | (owner id, registration sequence) | instance id |
//! | `monitored` | instance id | nothing |
//! | `samples` | (instance id, timestamp in µs) | `StoredSample` as JSON |
//! | `decisions` | (instance id, evaluated_at in µs, sequence) | `DecisionRecord` as JSON |
//!
//! Ids are UUIDs stored as `u128`. Tuple keys sort element by element, so the samples of one
//! instance between two times are one range scan, and its newest decisions are the end of one
//! range. The sequences break ties between rows written in the same microsecond, in write order.

use autoscaler_core::store::{Error, Result};
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Format of the tables below; a file written with another version is not opened.
pub(super) const SCHEMA_VERSION: u64 = 1;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
pub(super) const USER_EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");
pub(super) const INSTANCES: TableDefinition<u128, &[u8]> = TableDefinition::new("instances");
pub(super) const INSTANCE_IDS: TableDefinition<&str, u128> = TableDefinition::new("instance_ids");
pub(super) const OWNER_INSTANCES: TableDefinition<(u128, u64), u128> =
    TableDefinition::new("owner_instances");
pub(super) const MONITORED: TableDefinition<u128, ()> = TableDefinition::new("monitored");
pub(super) const SAMPLES: TableDefinition<(u128, i64), &[u8]> = TableDefinition::new("samples");
pub(super) const DECISIONS: TableDefinition<(u128, i64, u64), &[u8]> =
    TableDefinition::new("decisions");

/// `meta` keys.
pub(super) const SCHEMA_VERSION_KEY: &str = "schema_version";
pub(super) const INSTANCE_SEQUENCE_KEY: &str = "next_instance_sequence";
pub(super) const DECISION_SEQUENCE_KEY: &str = "next_decision_sequence";

/// Returns `at` as microseconds since the Unix epoch, rounded down.
pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// Drops the digits of `at` below one microsecond, the precision every stored time has.
pub(super) fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros(at)).unwrap_or(at)
}

/// Returns the current time at the stored precision.
pub(super) fn now() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

/// Serializes a record for a table value.
pub(super) fn encode<T: Serialize>(table: &str, record: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|cause| {
        Error::backend(format!("encoding a record of table {table} failed"), cause)
    })
}

/// Deserializes a table value; a value that does not parse is reported as corrupt.
pub(super) fn decode<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|cause| Error::backend(format!("corrupt record in table {table}"), cause))
}

/// Adds what was being done to a redb error and turns it into [`Error::Backend`].
pub(super) trait Context<T> {
    /// Maps the error to [`Error::Backend`] with the message "`doing` failed".
    fn context(self, doing: &str) -> Result<T>;
}

impl<T, E: Into<redb::Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, doing: &str) -> Result<T> {
        self.map_err(|cause| Error::backend(format!("{doing} failed"), cause.into()))
    }
}

/// Runs `op` in a write transaction and commits it when `op` succeeds.
///
/// An error from `op` drops the transaction, which aborts it, so nothing it wrote is kept.
pub(super) fn write<T>(
    db: &redb::Database,
    op: impl FnOnce(&WriteTransaction) -> Result<T>,
) -> Result<T> {
    let txn = db.begin_write().context("starting a write transaction")?;
    let value = op(&txn)?;
    txn.commit().context("committing a write transaction")?;
    Ok(value)
}

/// Starts a read transaction, which sees the last commit before it started.
pub(super) fn read(db: &redb::Database) -> Result<ReadTransaction> {
    use redb::ReadableDatabase;

    db.begin_read().context("starting a read transaction")
}

/// Takes the next value of the `meta` counter `key`, starting at 0.
pub(super) fn next_sequence(txn: &WriteTransaction, key: &str) -> Result<u64> {
    let mut meta = txn.open_table(META).context("opening table meta")?;
    let next = meta
        .get(key)
        .context("reading table meta")?
        .map_or(0, |value| value.value());
    meta.insert(key, next + 1).context("writing table meta")?;
    Ok(next)
}

/// Creates every table that does not exist yet.
pub(super) fn create_all(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(META).context("creating table meta")?;
    txn.open_table(USERS).context("creating table users")?;
    txn.open_table(USER_EMAILS)
        .context("creating table user_emails")?;
    txn.open_table(INSTANCES)
        .context("creating table instances")?;
    txn.open_table(INSTANCE_IDS)
        .context("creating table instance_ids")?;
    txn.open_table(OWNER_INSTANCES)
        .context("creating table owner_instances")?;
    txn.open_table(MONITORED)
        .context("creating table monitored")?;
    txn.open_table(SAMPLES).context("creating table samples")?;
    txn.open_table(DECISIONS)
        .context("creating table decisions")?;
    Ok(())
}
