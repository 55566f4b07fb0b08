//! Checks of sample storage and window reads.

use std::sync::Arc;

use chrono::TimeDelta;
use uuid::Uuid;

use super::support::{append, assert_not_found, at, create_instance, sample};
use crate::model::Sample;
use crate::store::{Store, StoredSample};

fn timestamps(samples: &[StoredSample]) -> Vec<chrono::DateTime<chrono::Utc>> {
    samples.iter().map(|s| s.sample.timestamp()).collect()
}

/// A sample whose instance and timestamp are stored already is neither stored again nor
/// counted, within one batch and across batches, and the first one's values stay.
pub async fn append_dedupes_by_timestamp(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let id = instance.id;
    append(
        store.as_ref(),
        &instance,
        &[
            sample(at(0), 10.0),
            sample(at(30), 20.0),
            sample(at(60), 30.0),
        ],
    )
    .await;

    let again = store
        .append_samples(&[(id, sample(at(60), 99.0)), (id, sample(at(90), 40.0))])
        .await
        .expect("append_samples");
    assert_eq!(again, 1, "only the sample at a new timestamp counts");

    let twice = store
        .append_samples(&[(id, sample(at(120), 50.0)), (id, sample(at(120), 51.0))])
        .await
        .expect("append_samples with a repeated timestamp");
    assert_eq!(
        twice, 1,
        "a timestamp repeated within one batch counts once"
    );

    let stored = store.recent_samples(id, 10).await.expect("recent_samples");
    assert_eq!(stored.len(), 5, "one sample per timestamp: {stored:?}");
    let at_60 = stored
        .iter()
        .find(|s| s.sample.timestamp() == at(60))
        .expect("the sample at 60 s is stored");
    assert_eq!(
        at_60.sample.cpu_utilization(),
        30.0,
        "the first sample's values stay"
    );
    let at_120 = stored
        .iter()
        .find(|s| s.sample.timestamp() == at(120))
        .expect("the sample at 120 s is stored");
    assert_eq!(
        at_120.sample.cpu_utilization(),
        50.0,
        "the first of a batch's twins stays"
    );
}

/// A batch that names an unknown instance gets `NotFound` and stores none of its samples.
pub async fn append_unknown_instance_stores_nothing(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let batch = [
        (instance.id, sample(at(0), 10.0)),
        (Uuid::new_v4(), sample(at(0), 10.0)),
        (instance.id, sample(at(30), 10.0)),
    ];
    assert_not_found(
        store.append_samples(&batch).await,
        "append_samples naming an unknown instance",
    );
    let stored = store
        .recent_samples(instance.id, 10)
        .await
        .expect("recent_samples");
    assert!(
        stored.is_empty(),
        "nothing of the batch is stored, got {stored:?}"
    );
}

/// One batch may carry many instances; deduplication is per instance, so equal timestamps of
/// different instances are all stored.
pub async fn append_batch_spans_instances(store: Arc<dyn Store>) {
    let first = create_instance(store.as_ref()).await;
    let second = create_instance(store.as_ref()).await;
    let batch = [
        (first.id, sample(at(0), 10.0)),
        (second.id, sample(at(0), 20.0)),
        (first.id, sample(at(30), 11.0)),
    ];
    let added = store.append_samples(&batch).await.expect("append_samples");
    assert_eq!(added, 3);
    let empty = store
        .append_samples(&[])
        .await
        .expect("append_samples of nothing");
    assert_eq!(empty, 0);

    let of_first = store
        .recent_samples(first.id, 10)
        .await
        .expect("recent_samples");
    assert_eq!(timestamps(&of_first), vec![at(30), at(0)]);
    assert!(of_first.iter().all(|s| s.instance == first.id));
    let of_second = store
        .recent_samples(second.id, 10)
        .await
        .expect("recent_samples");
    assert_eq!(of_second.len(), 1);
    assert_eq!(of_second[0].instance, second.id);
    assert_eq!(of_second[0].sample.cpu_utilization(), 20.0);
}

/// A window holds the samples with timestamps in `(since, until]`: the one at `since` is out,
/// the one at `until` is in, and an empty interval reads nothing.
pub async fn window_bounds_exclude_since(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let times = [at(0), at(1), at(150), at(299), at(300), at(301)];
    let samples: Vec<Sample> = times.iter().map(|&t| sample(t, 45.0)).collect();
    append(store.as_ref(), &instance, &samples).await;

    let windows = store
        .windows(&[instance.id], at(0), at(300))
        .await
        .expect("windows");
    let window = windows
        .get(&instance.id)
        .expect("the instance has samples in the window");
    assert_eq!(
        timestamps(window),
        vec![at(1), at(150), at(299), at(300)],
        "since is exclusive, until inclusive"
    );

    let micro = TimeDelta::microseconds(1);
    let narrow = store
        .windows(&[instance.id], at(300) - micro, at(300))
        .await
        .expect("windows of one microsecond");
    assert_eq!(
        narrow.get(&instance.id).map(|w| timestamps(w)),
        Some(vec![at(300)])
    );

    let empty = store
        .windows(&[instance.id], at(300), at(300))
        .await
        .expect("windows of an empty interval");
    assert!(empty.is_empty(), "(t, t] holds nothing, got {empty:?}");
    let inverted = store
        .windows(&[instance.id], at(300), at(0))
        .await
        .expect("windows with since after until");
    assert!(
        inverted.is_empty(),
        "since after until holds nothing, got {inverted:?}"
    );
}

/// One call reads the windows of many instances, each in ascending time order; instances
/// without samples in the window, and unknown ids, are absent from the result.
pub async fn windows_read_many_instances(store: Arc<dyn Store>) {
    let first = create_instance(store.as_ref()).await;
    let second = create_instance(store.as_ref()).await;
    let outside = create_instance(store.as_ref()).await;
    // Appended newest first, so that insertion order is not the answer.
    append(
        store.as_ref(),
        &first,
        &[
            sample(at(240), 4.0),
            sample(at(120), 2.0),
            sample(at(180), 3.0),
        ],
    )
    .await;
    append(
        store.as_ref(),
        &second,
        &[sample(at(60), 1.0), sample(at(30), 0.5)],
    )
    .await;
    append(
        store.as_ref(),
        &outside,
        &[sample(at(-60), 1.0), sample(at(400), 1.0)],
    )
    .await;

    let unknown = Uuid::new_v4();
    let ids = [first.id, second.id, outside.id, unknown];
    let windows = store.windows(&ids, at(0), at(300)).await.expect("windows");
    assert_eq!(
        windows.len(),
        2,
        "only instances with samples in the window: {windows:?}"
    );
    let of_first = windows.get(&first.id).expect("first instance's window");
    assert_eq!(timestamps(of_first), vec![at(120), at(180), at(240)]);
    assert!(of_first.iter().all(|s| s.instance == first.id));
    let of_second = windows.get(&second.id).expect("second instance's window");
    assert_eq!(timestamps(of_second), vec![at(30), at(60)]);
    assert!(!windows.contains_key(&outside.id));
    assert!(!windows.contains_key(&unknown));

    let none = store
        .windows(&[], at(0), at(300))
        .await
        .expect("windows of no instance");
    assert!(none.is_empty());
}

/// The newest `limit` samples come newest first; a limit of 0 and an unknown instance give
/// nothing.
pub async fn recent_samples_newest_first(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let other = create_instance(store.as_ref()).await;
    let times = [at(60), at(0), at(120), at(90), at(30)];
    let samples: Vec<Sample> = times.iter().map(|&t| sample(t, 45.0)).collect();
    append(store.as_ref(), &instance, &samples).await;
    append(store.as_ref(), &other, &[sample(at(500), 45.0)]).await;

    let newest = store
        .recent_samples(instance.id, 3)
        .await
        .expect("recent_samples");
    assert_eq!(timestamps(&newest), vec![at(120), at(90), at(60)]);
    let all = store
        .recent_samples(instance.id, 100)
        .await
        .expect("recent_samples");
    assert_eq!(
        timestamps(&all),
        vec![at(120), at(90), at(60), at(30), at(0)]
    );
    let none = store
        .recent_samples(instance.id, 0)
        .await
        .expect("recent_samples with limit 0");
    assert!(none.is_empty());
    let unknown = store
        .recent_samples(Uuid::new_v4(), 10)
        .await
        .expect("recent_samples of an unknown instance");
    assert!(unknown.is_empty());
}

/// Stored samples read back with the same values, absent signals stay absent, timestamps keep
/// microseconds, and a new sample is not flagged.
pub async fn sample_values_round_trip(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let precise = at(10) + TimeDelta::microseconds(123_456);
    let full = Sample::new(
        precise,
        12.345_678,
        Some(87.654_321),
        1_234_567.0,
        7_654_321.5,
    )
    .expect("valid sample");
    let partial =
        Sample::partial(at(40), 99.5, None, None, None).expect("valid sample without memory");
    append(store.as_ref(), &instance, &[full, partial]).await;

    let stored = store
        .recent_samples(instance.id, 10)
        .await
        .expect("recent_samples");
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0].sample, partial,
        "absent memory and network stay absent"
    );
    assert_eq!(stored[1].sample, full, "values and microseconds survive");
    for s in &stored {
        assert_eq!(s.instance, instance.id);
        assert_eq!(s.outlier_type, None, "a new sample is not flagged");
    }
    assert_ne!(stored[0].id, stored[1].id, "each sample has its own id");
}
