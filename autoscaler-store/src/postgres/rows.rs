//! Column lists and the decoding of rows into the store's records.

use autoscaler_core::engine::{Evidence, Rule};
use autoscaler_core::store::{
    CollectionError, DecisionRecord, Instance, Result, StoredSample, User,
};
use autoscaler_core::{Decision, Outcome, Sample, ScaleState};
use chrono::{DateTime, Timelike, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Decode, Postgres, Row, Type};

use super::error::corrupt;

/// Columns of `users`, in the order [`user`] reads them.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, created_at"
    };
}

/// Columns of `instances`, in the order [`instance`] reads them.
macro_rules! instance_columns {
    () => {
        "id, owner_id, instance_id, instance_type, region, is_mock, is_monitoring, scale_level, \
         last_action_at, last_evaluated_sample, created_at, collection_error, collection_error_at"
    };
}

/// Columns of `samples`, in the order [`sample`] reads them.
macro_rules! sample_columns {
    () => {
        "id, instance, taken_at, cpu_utilization, memory_usage, network_in, network_out, \
         outlier_type"
    };
}

/// Columns of `decisions`, in the order [`decision`] reads them.
macro_rules! decision_columns {
    () => {
        "id, instance, evaluated_at, decision, rule, reason, outcome, level_before, level_after, \
         evidence"
    };
}

pub(super) use {decision_columns, instance_columns, sample_columns, user_columns};

/// Truncates `at` to whole microseconds, the precision of `timestamptz`.
///
/// Binding and comparing truncated values keeps what a write returns equal to what a later
/// read returns. The fraction below one microsecond is always non-negative, so this rounds
/// towards the past also before 1970.
pub(super) fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at)
}

/// Reads one column, reporting a value that does not decode as corrupt data.
fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(column)
        .map_err(|error| corrupt(&format!("column {column}"), error))
}

/// Reads a scale level stored as `bigint`.
fn level(row: &PgRow, column: &str) -> Result<u32> {
    let value: i64 = get(row, column)?;
    u32::try_from(value)
        .map_err(|error| corrupt(&format!("scale level {value} in {column}"), error))
}

/// Reads a decision stored by its wire name.
fn decision_name(column: &str, name: &str) -> Result<Decision> {
    Decision::parse(name).ok_or_else(|| {
        corrupt(
            &format!("decision {name:?} in {column}"),
            "unknown decision",
        )
    })
}

/// Decodes a row of `users`.
pub(super) fn user(row: &PgRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        created_at: get(row, "created_at")?,
    })
}

/// Decodes a row of `instances`.
pub(super) fn instance(row: &PgRow) -> Result<Instance> {
    let message: Option<String> = get(row, "collection_error")?;
    let failed_at: Option<DateTime<Utc>> = get(row, "collection_error_at")?;
    let last_collection_error = match (message, failed_at) {
        (Some(message), Some(at)) => Some(CollectionError { message, at }),
        _ => None,
    };
    Ok(Instance {
        id: get(row, "id")?,
        owner_id: get(row, "owner_id")?,
        instance_id: get(row, "instance_id")?,
        instance_type: get(row, "instance_type")?,
        region: get(row, "region")?,
        is_mock: get(row, "is_mock")?,
        is_monitoring: get(row, "is_monitoring")?,
        scale: ScaleState {
            level: level(row, "scale_level")?,
            last_action_at: get(row, "last_action_at")?,
            last_evaluated_sample: get(row, "last_evaluated_sample")?,
        },
        created_at: get(row, "created_at")?,
        last_collection_error,
    })
}

/// Decodes a row of `samples`.
pub(super) fn sample(row: &PgRow) -> Result<StoredSample> {
    let values = Sample::partial(
        get(row, "taken_at")?,
        get(row, "cpu_utilization")?,
        get(row, "memory_usage")?,
        get(row, "network_in")?,
        get(row, "network_out")?,
    )
    .map_err(|error| corrupt("sample values", error))?;
    let outlier_type = match get::<Option<String>>(row, "outlier_type")? {
        Some(name) => Some(decision_name("samples.outlier_type", &name)?),
        None => None,
    };
    Ok(StoredSample {
        id: get(row, "id")?,
        instance: get(row, "instance")?,
        sample: values,
        outlier_type,
    })
}

/// Decodes a row of `decisions`.
pub(super) fn decision(row: &PgRow) -> Result<DecisionRecord> {
    let decision: String = get(row, "decision")?;
    let rule: String = get(row, "rule")?;
    let rule: Rule = serde_json::from_value(serde_json::Value::String(rule))
        .map_err(|error| corrupt("rule in decisions.rule", error))?;
    let Json(outcome): Json<Outcome> = get(row, "outcome")?;
    let Json(evidence): Json<Evidence> = get(row, "evidence")?;
    Ok(DecisionRecord {
        id: get(row, "id")?,
        instance: get(row, "instance")?,
        evaluated_at: get(row, "evaluated_at")?,
        decision: decision_name("decisions.decision", &decision)?,
        rule,
        reason: get(row, "reason")?,
        outcome,
        level_before: level(row, "level_before")?,
        level_after: level(row, "level_after")?,
        evidence,
    })
}
