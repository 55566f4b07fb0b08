//! Checks of recording evaluations, decision history, retention and durability.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::support::{
    append, append_series, assert_conflict, assert_not_found, at, create_instance, evaluation,
    race, reload, sample, single_winner,
};
use crate::capacity::{Block, Outcome, ScaleState};
use crate::engine::Rule;
use crate::model::Decision;
use crate::store::{Instance, NewDecisionRecord, Store, StoredSample};

/// Returns the outlier flags of the instance's samples, newest first.
async fn flags(store: &dyn Store, instance: &Instance) -> Vec<Option<Decision>> {
    store
        .recent_samples(instance.id, 100)
        .await
        .expect("recent_samples")
        .iter()
        .map(|s: &StoredSample| s.outlier_type)
        .collect()
}

/// Stores ten samples at 95 % CPU ending at `end` and records the scale-up they cause.
async fn apply_spike(store: &dyn Store, instance: &Instance, end: DateTime<Utc>) {
    append_series(store, instance, end, 10, 95.0).await;
    let record = evaluation(store, instance, end).await;
    let stored = store
        .record_evaluation(record)
        .await
        .expect("record_evaluation");
    assert!(stored.applied(), "ten samples at 95 % scale up: {stored:?}");
}

/// Recording a sustained scale-up stores the record, flags the latest sample and moves the scale
/// state, and reads return all three.
pub async fn evaluation_applies_atomically(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    append_series(store.as_ref(), &instance, at(600), 10, 95.0).await;
    let new = evaluation(store.as_ref(), &instance, at(600)).await;
    assert_eq!(new.evaluation.decision, Decision::ScaleUp);
    assert_eq!(new.evaluation.rule, Rule::SustainedHigh);

    let record = store
        .record_evaluation(new.clone())
        .await
        .expect("record_evaluation");
    assert_eq!(record.instance, instance.id);
    assert_eq!(record.evaluated_at, at(600));
    assert_eq!(record.decision, Decision::ScaleUp);
    assert_eq!(record.rule, Rule::SustainedHigh);
    assert_eq!(record.reason, new.evaluation.reason());
    assert_eq!(record.evidence, new.evaluation.evidence);
    assert_eq!(
        record.outcome,
        Outcome::Applied {
            from_level: 1,
            to_level: 2
        }
    );
    assert_eq!((record.level_before, record.level_after), (1, 2));

    let state = reload(store.as_ref(), &instance).await.scale;
    let expected = ScaleState {
        level: 2,
        last_action_at: Some(at(600)),
        last_evaluated_sample: Some(at(600)),
    };
    assert_eq!(state, expected, "the scale state moves with the record");

    let flagged = flags(store.as_ref(), &instance).await;
    assert_eq!(
        flagged[0],
        Some(Decision::ScaleUp),
        "the decided-on sample is flagged"
    );
    assert!(
        flagged[1..].iter().all(Option::is_none),
        "only that sample: {flagged:?}"
    );

    let history = store
        .recent_decisions(instance.id, 10)
        .await
        .expect("recent_decisions");
    assert_eq!(history, vec![record]);
}

/// A scale-up blocked by the cooldown is recorded with its block and flags its sample, but
/// keeps the level and the time of the last action.
pub async fn evaluation_blocked_keeps_level(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    apply_spike(store.as_ref(), &instance, at(600)).await;
    append(store.as_ref(), &instance, &[sample(at(630), 95.0)]).await;

    let new = evaluation(store.as_ref(), &instance, at(630)).await;
    let record = store
        .record_evaluation(new)
        .await
        .expect("record_evaluation");
    assert_eq!(record.decision, Decision::ScaleUp);
    assert!(!record.applied());
    assert_eq!(
        record.blocked_by(),
        Some(Block::Cooldown { until: at(900) })
    );
    assert_eq!((record.level_before, record.level_after), (2, 2));

    let state = reload(store.as_ref(), &instance).await.scale;
    assert_eq!(state.level, 2, "a blocked action keeps the level");
    assert_eq!(
        state.last_action_at,
        Some(at(600)),
        "and the time of the last action"
    );
    assert_eq!(
        state.last_evaluated_sample,
        Some(at(630)),
        "but marks the sample evaluated"
    );
    let flagged = flags(store.as_ref(), &instance).await;
    assert_eq!(
        flagged[0],
        Some(Decision::ScaleUp),
        "a sustained rule flags even when blocked"
    );
    let history = store
        .recent_decisions(instance.id, 10)
        .await
        .expect("recent_decisions");
    assert_eq!(history.len(), 2, "every evaluation is recorded");
}

/// A `no_action` evaluation is recorded, flags no sample and changes only the evaluated-sample
/// mark.
pub async fn evaluation_no_action_flags_nothing(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let cpus = [44.0, 46.0, 45.0, 47.0, 43.0, 45.5];
    let samples: Vec<_> = cpus
        .iter()
        .zip(0..)
        .map(|(&cpu, i)| sample(at(30 * i), cpu))
        .collect();
    append(store.as_ref(), &instance, &samples).await;

    let new = evaluation(store.as_ref(), &instance, at(150)).await;
    assert_eq!(new.evaluation.decision, Decision::NoAction);
    let record = store
        .record_evaluation(new)
        .await
        .expect("record_evaluation");
    assert_eq!(record.outcome, Outcome::Unchanged);
    assert_eq!((record.level_before, record.level_after), (1, 1));

    let state = reload(store.as_ref(), &instance).await.scale;
    let expected = ScaleState {
        last_evaluated_sample: Some(at(150)),
        ..ScaleState::initial()
    };
    assert_eq!(state, expected);
    let flagged = flags(store.as_ref(), &instance).await;
    assert!(
        flagged.iter().all(Option::is_none),
        "nothing is flagged: {flagged:?}"
    );
}

/// An evaluation computed against a scale state that is no longer stored gets `Conflict` and
/// leaves no trace: no record, no flag, no state change.
pub async fn evaluation_stale_state_conflicts(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    append_series(store.as_ref(), &instance, at(600), 10, 95.0).await;
    let mut stale = evaluation(store.as_ref(), &instance, at(600)).await;
    stale.expected = ScaleState {
        level: 3,
        ..stale.expected
    };

    assert_conflict(
        store.record_evaluation(stale).await,
        "record_evaluation against a stale state",
    );
    let after = reload(store.as_ref(), &instance).await;
    assert_eq!(after.scale, ScaleState::initial(), "the state is unchanged");
    let history = store
        .recent_decisions(instance.id, 10)
        .await
        .expect("recent_decisions");
    assert!(history.is_empty(), "no record is stored, got {history:?}");
    let flagged = flags(store.as_ref(), &instance).await;
    assert!(
        flagged.iter().all(Option::is_none),
        "no sample is flagged: {flagged:?}"
    );
}

/// Of many tasks that record the same scale-up against the same state at once, exactly one
/// applies it; the level moves by one and one record is stored.
pub async fn evaluation_race_applies_once(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    append_series(store.as_ref(), &instance, at(600), 10, 95.0).await;
    let new: NewDecisionRecord = evaluation(store.as_ref(), &instance, at(600)).await;
    assert!(new.evaluation.outcome.is_applied());

    let results = race(&store, |store| {
        let new = new.clone();
        async move { store.record_evaluation(new).await }
    })
    .await;
    let winner = single_winner(results, "concurrent record_evaluation");
    assert!(winner.applied());

    let state = reload(store.as_ref(), &instance).await.scale;
    assert_eq!(state.level, 2, "the action is applied once");
    let history = store
        .recent_decisions(instance.id, 100)
        .await
        .expect("recent_decisions");
    assert_eq!(history, vec![winner], "one record is stored");
}

/// Recording an evaluation of an unknown instance gets `NotFound`.
pub async fn evaluation_unknown_instance_not_found(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    append_series(store.as_ref(), &instance, at(600), 10, 95.0).await;
    let mut orphan = evaluation(store.as_ref(), &instance, at(600)).await;
    orphan.instance = Uuid::new_v4();
    assert_not_found(
        store.record_evaluation(orphan).await,
        "record_evaluation of an unknown instance",
    );
    let history = store
        .recent_decisions(instance.id, 10)
        .await
        .expect("recent_decisions");
    assert!(
        history.is_empty(),
        "nothing is recorded on the other instance"
    );
}

/// The newest `limit` decision records come newest first; a limit of 0 and an unknown instance
/// give nothing.
pub async fn decisions_newest_first(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    for step in 0..4 {
        let now = at(30 * step);
        append(store.as_ref(), &instance, &[sample(now, 45.0)]).await;
        let new = evaluation(store.as_ref(), &instance, now).await;
        store
            .record_evaluation(new)
            .await
            .expect("record_evaluation");
    }

    let newest = store
        .recent_decisions(instance.id, 3)
        .await
        .expect("recent_decisions");
    let times: Vec<_> = newest.iter().map(|r| r.evaluated_at).collect();
    assert_eq!(times, vec![at(90), at(60), at(30)]);
    let none = store
        .recent_decisions(instance.id, 0)
        .await
        .expect("recent_decisions with limit 0");
    assert!(none.is_empty());
    let unknown = store
        .recent_decisions(Uuid::new_v4(), 10)
        .await
        .expect("recent_decisions of an unknown instance");
    assert!(unknown.is_empty());
}

/// `purge_before` deletes samples and decision records strictly older than the cutoff, at most
/// `batch` of each per call, and keeps the rest.
///
/// Works in 2001, so that it deletes nothing that other checks store.
pub async fn purge_deletes_only_older_rows(store: Arc<dyn Store>) {
    let base = DateTime::from_timestamp(978_307_200, 0).expect("2001-01-01 is a valid time");
    let hour = |h: i64| base + TimeDelta::hours(h);
    let instance = create_instance(store.as_ref()).await;
    // Samples at 9:00, 10:00, 11:00, 12:00 (the cutoff) and 13:00; decisions at 9:00, 10:00 and 13:00.
    for h in [9, 10, 11, 12, 13] {
        append(store.as_ref(), &instance, &[sample(hour(h), 45.0)]).await;
        if h != 11 && h != 12 {
            let new = evaluation(store.as_ref(), &instance, hour(h)).await;
            store
                .record_evaluation(new)
                .await
                .expect("record_evaluation");
        }
    }

    let cutoff = hour(12);
    let mut deleted = Vec::new();
    loop {
        let count = store.purge_before(cutoff, 1).await.expect("purge_before");
        assert!(
            count <= 2,
            "a batch of 1 deletes at most one row per table, deleted {count}"
        );
        if count == 0 {
            break;
        }
        deleted.push(count);
        assert!(
            deleted.len() <= 5,
            "purge_before keeps finding rows: {deleted:?}"
        );
    }
    assert_eq!(
        deleted.iter().sum::<usize>(),
        5,
        "three samples and two decisions go"
    );

    let samples = store
        .recent_samples(instance.id, 10)
        .await
        .expect("recent_samples");
    let times: Vec<_> = samples.iter().map(|s| s.sample.timestamp()).collect();
    assert_eq!(
        times,
        vec![hour(13), hour(12)],
        "the sample at the cutoff stays"
    );
    let decisions = store
        .recent_decisions(instance.id, 10)
        .await
        .expect("recent_decisions");
    let times: Vec<_> = decisions.iter().map(|r| r.evaluated_at).collect();
    assert_eq!(times, vec![hour(13)]);
}

/// Everything acknowledged before the store is closed is there after the database is opened
/// again: users, instances with monitoring flags and scale state, samples with outlier flags,
/// and decision records.
///
/// Drops `store` before calling `reopen`, so the caller must hold no other handle to it; a
/// backend that locks its file can then open it again.
pub async fn data_survives_reopen<F, Fut>(store: Arc<dyn Store>, reopen: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let instance = create_instance(store.as_ref()).await;
    let owner = store
        .user(instance.owner_id)
        .await
        .expect("user")
        .expect("the owner exists");
    store
        .set_monitoring(&instance.instance_id, true)
        .await
        .expect("set_monitoring");
    apply_spike(store.as_ref(), &instance, at(600)).await;
    let before = reload(store.as_ref(), &instance).await;
    let samples = store
        .recent_samples(instance.id, 100)
        .await
        .expect("recent_samples");
    let decisions = store
        .recent_decisions(instance.id, 100)
        .await
        .expect("recent_decisions");
    drop(store);

    let store = reopen().await;
    let user = store
        .user_by_email(&owner.email)
        .await
        .expect("user_by_email");
    assert_eq!(user, Some(owner), "the user survives");
    let after = reload(store.as_ref(), &instance).await;
    assert_eq!(after, before, "the instance survives with its scale state");
    assert!(after.is_monitoring);
    assert_eq!(after.scale.level, 2);
    let monitored = store
        .monitored_instances()
        .await
        .expect("monitored_instances");
    assert!(
        monitored.iter().any(|i| i.id == instance.id),
        "monitoring survives"
    );
    let samples_after = store
        .recent_samples(instance.id, 100)
        .await
        .expect("recent_samples");
    assert_eq!(samples_after, samples, "samples survive with their flags");
    let decisions_after = store
        .recent_decisions(instance.id, 100)
        .await
        .expect("recent_decisions");
    assert_eq!(decisions_after, decisions, "decision records survive");
}
