//! Samples, decision records and retention.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use autoscaler_core::model::Sample;
use autoscaler_core::store::{DecisionRecord, Error, NewDecisionRecord, Result, StoredSample};
use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::registry::{load_instance, store_instance};
use super::tables::{
    self, Context, DECISION_SEQUENCE_KEY, DECISIONS, INSTANCES, SAMPLES, decode, encode, micros,
};

pub(super) fn append(db: &Database, batch: &[(Uuid, Sample)]) -> Result<usize> {
    tables::write(db, |txn| {
        check_instances_exist(txn, batch.iter().map(|(id, _)| *id))?;
        let mut samples = txn.open_table(SAMPLES).context("opening table samples")?;
        let mut added = 0;
        for &(instance, sample) in batch {
            let key = (instance.as_u128(), micros(sample.timestamp()));
            if samples.get(key).context("reading table samples")?.is_some() {
                continue;
            }
            let stored = StoredSample {
                id: Uuid::new_v4(),
                instance,
                sample: sample.at(tables::truncate_to_micros(sample.timestamp())),
                outlier_type: None,
            };
            samples
                .insert(key, encode("samples", &stored)?.as_slice())
                .context("writing table samples")?;
            added += 1;
        }
        Ok(added)
    })
}

/// Fails with [`Error::NotFound`] naming the first id that is not a registered instance.
fn check_instances_exist(
    txn: &WriteTransaction,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<()> {
    let instances = txn
        .open_table(INSTANCES)
        .context("opening table instances")?;
    let mut checked = HashSet::new();
    for id in ids {
        if checked.insert(id)
            && instances
                .get(id.as_u128())
                .context("reading table instances")?
                .is_none()
        {
            return Err(Error::NotFound {
                entity: "instance",
                key: id.to_string(),
            });
        }
    }
    Ok(())
}

pub(super) fn windows(
    db: &Database,
    instances: &[Uuid],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<HashMap<Uuid, Vec<StoredSample>>> {
    let (since, until) = (micros(since), micros(until));
    let mut found = HashMap::new();
    if since >= until {
        return Ok(found);
    }
    let txn = tables::read(db)?;
    let samples = txn.open_table(SAMPLES).context("opening table samples")?;
    for &instance in instances {
        if found.contains_key(&instance) {
            continue;
        }
        let key = instance.as_u128();
        // Stored times are whole microseconds, so rounding both bounds down keeps `(since, until]`.
        let range = (Bound::Excluded((key, since)), Bound::Included((key, until)));
        let mut window = Vec::new();
        for entry in samples.range(range).context("reading table samples")? {
            let (_, bytes) = entry.context("reading table samples")?;
            window.push(decode::<StoredSample>("samples", bytes.value())?);
        }
        if !window.is_empty() {
            found.insert(instance, window);
        }
    }
    Ok(found)
}

pub(super) fn recent(db: &Database, instance: Uuid, limit: usize) -> Result<Vec<StoredSample>> {
    let txn = tables::read(db)?;
    let samples = txn.open_table(SAMPLES).context("opening table samples")?;
    let key = instance.as_u128();
    let mut found = Vec::new();
    for entry in samples
        .range((key, i64::MIN)..=(key, i64::MAX))
        .context("reading table samples")?
        .rev()
        .take(limit)
    {
        let (_, bytes) = entry.context("reading table samples")?;
        found.push(decode("samples", bytes.value())?);
    }
    Ok(found)
}

pub(super) fn record_evaluation(
    db: &Database,
    mut new: NewDecisionRecord,
) -> Result<DecisionRecord> {
    new.evaluated_at = tables::truncate_to_micros(new.evaluated_at);
    tables::write(db, |txn| {
        let mut instance = {
            let instances = txn
                .open_table(INSTANCES)
                .context("opening table instances")?;
            load_instance(&instances, new.instance.as_u128())?.ok_or_else(|| Error::NotFound {
                entity: "instance",
                key: new.instance.to_string(),
            })?
        };
        if instance.scale != new.expected {
            return Err(Error::Conflict {
                entity: "scale state",
                key: instance.instance_id,
            });
        }

        let record = DecisionRecord::from_new(Uuid::new_v4(), &new);
        if let Some(latest) = new
            .evaluation
            .latest()
            .filter(|_| new.evaluation.flags_latest())
        {
            flag_sample(
                txn,
                &instance.instance_id,
                new.instance,
                latest,
                record.decision,
            )?;
        }
        let sequence = tables::next_sequence(txn, DECISION_SEQUENCE_KEY)?;
        let mut decisions = txn
            .open_table(DECISIONS)
            .context("opening table decisions")?;
        decisions
            .insert(
                (new.instance.as_u128(), micros(new.evaluated_at), sequence),
                encode("decisions", &record)?.as_slice(),
            )
            .context("writing table decisions")?;

        instance.scale = new.next_state();
        store_instance(txn, &instance)?;
        Ok(record)
    })
}

/// Marks the stored sample that a sustained rule fired on as an outlier of `decision`'s type.
fn flag_sample(
    txn: &WriteTransaction,
    instance_id: &str,
    instance: Uuid,
    latest: &Sample,
    decision: autoscaler_core::Decision,
) -> Result<()> {
    let mut samples = txn.open_table(SAMPLES).context("opening table samples")?;
    let key = (instance.as_u128(), micros(latest.timestamp()));
    let mut stored: StoredSample = match samples.get(key).context("reading table samples")? {
        Some(bytes) => decode("samples", bytes.value())?,
        None => {
            return Err(Error::NotFound {
                entity: "sample",
                key: format!("{instance_id} at {}", latest.timestamp().to_rfc3339()),
            });
        }
    };
    stored.outlier_type = Some(decision);
    samples
        .insert(key, encode("samples", &stored)?.as_slice())
        .context("writing table samples")?;
    Ok(())
}

pub(super) fn recent_decisions(
    db: &Database,
    instance: Uuid,
    limit: usize,
) -> Result<Vec<DecisionRecord>> {
    let txn = tables::read(db)?;
    let decisions = txn
        .open_table(DECISIONS)
        .context("opening table decisions")?;
    let key = instance.as_u128();
    let mut found = Vec::new();
    for entry in decisions
        .range((key, i64::MIN, u64::MIN)..=(key, i64::MAX, u64::MAX))
        .context("reading table decisions")?
        .rev()
        .take(limit)
    {
        let (_, bytes) = entry.context("reading table decisions")?;
        found.push(decode("decisions", bytes.value())?);
    }
    Ok(found)
}

/// Deletes up to `batch` samples and up to `batch` decision records older than `cutoff`.
///
/// Both tables are keyed by instance first, so the old rows of each instance are the start of
/// its key range. The scan visits instances in id order until the batch is used up.
pub(super) fn purge_before(db: &Database, cutoff: DateTime<Utc>, batch: usize) -> Result<usize> {
    let cutoff = micros(cutoff);
    tables::write(db, |txn| {
        let ids = instance_keys(txn)?;

        let mut samples = txn.open_table(SAMPLES).context("opening table samples")?;
        let mut old_samples = Vec::new();
        for &id in &ids {
            let range = (id, i64::MIN)..(id, cutoff);
            for entry in samples
                .range(range)
                .context("reading table samples")?
                .take(batch - old_samples.len())
            {
                let (key, _) = entry.context("reading table samples")?;
                old_samples.push(key.value());
            }
            if old_samples.len() == batch {
                break;
            }
        }
        for key in &old_samples {
            samples.remove(key).context("deleting from table samples")?;
        }

        let mut decisions = txn
            .open_table(DECISIONS)
            .context("opening table decisions")?;
        let mut old_decisions = Vec::new();
        for &id in &ids {
            let range = (id, i64::MIN, u64::MIN)..(id, cutoff, u64::MIN);
            for entry in decisions
                .range(range)
                .context("reading table decisions")?
                .take(batch - old_decisions.len())
            {
                let (key, _) = entry.context("reading table decisions")?;
                old_decisions.push(key.value());
            }
            if old_decisions.len() == batch {
                break;
            }
        }
        for key in &old_decisions {
            decisions
                .remove(key)
                .context("deleting from table decisions")?;
        }
        Ok(old_samples.len() + old_decisions.len())
    })
}

fn instance_keys(txn: &WriteTransaction) -> Result<Vec<u128>> {
    let instances = txn
        .open_table(INSTANCES)
        .context("opening table instances")?;
    let mut keys = Vec::new();
    for entry in instances.iter().context("reading table instances")? {
        let (key, _) = entry.context("reading table instances")?;
        keys.push(key.value());
    }
    Ok(keys)
}
