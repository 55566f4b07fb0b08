//! Checks of instance records, monitoring flags and collection errors.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::support::{
    RACERS, assert_conflict, assert_not_found, assert_recent, at, create_instance, create_user,
    new_instance, race, reload, single_winner, unique,
};
use crate::capacity::ScaleState;
use crate::store::{CollectionError, NewInstance, Store};

/// A created instance keeps its fields, starts at scale level 1 unmonitored, and is found by
/// its instance id.
pub async fn instance_create_and_find(store: Arc<dyn Store>) {
    let owner = create_user(store.as_ref()).await;
    let before = Utc::now();
    let new = NewInstance {
        owner_id: owner.id,
        instance_id: unique("i"),
        instance_type: "m5.large".into(),
        region: "eu-west-1".into(),
        is_mock: false,
    };
    let instance = store
        .create_instance(new.clone())
        .await
        .expect("create_instance");
    assert_eq!(instance.owner_id, owner.id);
    assert_eq!(instance.instance_id, new.instance_id);
    assert_eq!(instance.instance_type, "m5.large");
    assert_eq!(instance.region, "eu-west-1");
    assert!(!instance.is_mock);
    assert!(!instance.is_monitoring, "a new instance is not monitored");
    assert_eq!(
        instance.scale,
        ScaleState::initial(),
        "a new instance starts at level 1"
    );
    assert_eq!(instance.last_collection_error, None);
    assert_recent(instance.created_at, before, "instance created_at");

    let found = store.instance(&new.instance_id).await.expect("instance");
    assert_eq!(found, Some(instance));
}

/// Unknown instance ids and owners read as absent, not as errors.
pub async fn instance_unknown_is_absent(store: Arc<dyn Store>) {
    let found = store.instance(&unique("missing")).await.expect("instance");
    assert_eq!(found, None);
    let owned = store
        .instances_by_owner(Uuid::new_v4())
        .await
        .expect("instances_by_owner");
    assert!(
        owned.is_empty(),
        "an unknown owner has no instances, got {owned:?}"
    );
}

/// Registering an instance for an owner that is not a user gets `NotFound` and stores nothing.
pub async fn instance_unknown_owner_not_found(store: Arc<dyn Store>) {
    let new = new_instance(Uuid::new_v4());
    let result = store.create_instance(new.clone()).await;
    assert_not_found(result, "create_instance for an unknown owner");
    let found = store.instance(&new.instance_id).await.expect("instance");
    assert_eq!(found, None, "nothing is stored");
}

/// A taken instance id gets `Conflict`, also for another owner, and the first record stays.
pub async fn instance_duplicate_id_conflicts(store: Arc<dyn Store>) {
    let first = create_instance(store.as_ref()).await;
    let other_owner = create_user(store.as_ref()).await;
    let duplicate = NewInstance {
        instance_id: first.instance_id.clone(),
        ..new_instance(other_owner.id)
    };
    assert_conflict(
        store.create_instance(duplicate).await,
        "create_instance with a taken instance id",
    );
    assert_eq!(
        reload(store.as_ref(), &first).await,
        first,
        "the first instance stays"
    );
    let owned = store
        .instances_by_owner(other_owner.id)
        .await
        .expect("instances_by_owner");
    assert!(
        owned.is_empty(),
        "the losing owner got no instance, got {owned:?}"
    );
}

/// Of many tasks that register one instance id at the same time, exactly one succeeds.
pub async fn instance_concurrent_create_one_wins(store: Arc<dyn Store>) {
    let owner = create_user(store.as_ref()).await;
    let template = new_instance(owner.id);
    let results = race(&store, |store| {
        let new = template.clone();
        async move { store.create_instance(new).await }
    })
    .await;
    assert_eq!(results.len(), RACERS);
    let winner = single_winner(results, "concurrent create_instance");
    let owned = store
        .instances_by_owner(owner.id)
        .await
        .expect("instances_by_owner");
    assert_eq!(
        owned,
        vec![winner],
        "the owner has the winner and nothing else"
    );
}

/// An owner's instances come oldest registration first and exclude other owners' instances.
pub async fn instances_by_owner_oldest_first(store: Arc<dyn Store>) {
    let owner = create_user(store.as_ref()).await;
    let other = create_user(store.as_ref()).await;
    let mut expected = Vec::new();
    for _ in 0..3 {
        let mine = store
            .create_instance(new_instance(owner.id))
            .await
            .expect("create_instance");
        expected.push(mine.instance_id);
        store
            .create_instance(new_instance(other.id))
            .await
            .expect("create_instance for another owner");
    }
    let owned = store
        .instances_by_owner(owner.id)
        .await
        .expect("instances_by_owner");
    let ids: Vec<String> = owned.into_iter().map(|i| i.instance_id).collect();
    assert_eq!(
        ids, expected,
        "oldest registration first, only this owner's"
    );
}

/// Monitoring turns on and off, is returned by `set_monitoring` and `instance`, and decides
/// membership in `monitored_instances`.
pub async fn monitoring_on_and_off(store: Arc<dyn Store>) {
    let watched = create_instance(store.as_ref()).await;
    let idle = create_instance(store.as_ref()).await;

    let on = store
        .set_monitoring(&watched.instance_id, true)
        .await
        .expect("set_monitoring on");
    assert!(
        on.is_monitoring,
        "set_monitoring returns the updated instance"
    );
    assert_eq!(on, reload(store.as_ref(), &watched).await);
    let monitored = monitored_ids(store.as_ref()).await;
    assert!(
        monitored.contains(&watched.id),
        "a monitored instance is listed"
    );
    assert!(
        !monitored.contains(&idle.id),
        "an unmonitored instance is not listed"
    );

    let off = store
        .set_monitoring(&watched.instance_id, false)
        .await
        .expect("set_monitoring off");
    assert!(!off.is_monitoring);
    assert!(!reload(store.as_ref(), &watched).await.is_monitoring);
    let again = store.set_monitoring(&watched.instance_id, false).await;
    assert_conflict(again, "stopping monitoring that is not active");
    let monitored = monitored_ids(store.as_ref()).await;
    assert!(
        !monitored.contains(&watched.id),
        "monitoring off removes it from the list"
    );
}

async fn monitored_ids(store: &dyn Store) -> Vec<Uuid> {
    store
        .monitored_instances()
        .await
        .expect("monitored_instances")
        .into_iter()
        .map(|instance| instance.id)
        .collect()
}

/// Of many racing requests to start monitoring one instance exactly one succeeds; the others
/// get `Conflict`, and the instance ends monitored.
pub async fn monitoring_concurrent_start_one_wins(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let instance_id = instance.instance_id.clone();
    let results = race(&store, move |store| {
        let instance_id = instance_id.clone();
        async move { store.set_monitoring(&instance_id, true).await }
    })
    .await;
    single_winner(results, "racing starts of monitoring");
    assert!(reload(store.as_ref(), &instance).await.is_monitoring);
}

/// Turning monitoring on for an unknown instance id gets `NotFound`.
pub async fn monitoring_unknown_instance_not_found(store: Arc<dyn Store>) {
    let result = store.set_monitoring(&unique("missing"), true).await;
    assert_not_found(result, "set_monitoring of an unknown instance");
}

/// A collection error is stored on the instance and `None` clears it; an unknown instance gets
/// `NotFound`.
pub async fn collection_error_set_and_clear(store: Arc<dyn Store>) {
    let instance = create_instance(store.as_ref()).await;
    let error = CollectionError {
        message: "GetMetricData failed: AccessDenied".into(),
        at: at(90),
    };
    store
        .set_collection_error(instance.id, Some(error.clone()))
        .await
        .expect("set_collection_error");
    let stored = reload(store.as_ref(), &instance).await;
    assert_eq!(stored.last_collection_error, Some(error));

    store
        .set_collection_error(instance.id, None)
        .await
        .expect("set_collection_error None");
    let cleared = reload(store.as_ref(), &instance).await;
    assert_eq!(cleared.last_collection_error, None);
    assert_eq!(cleared.scale, instance.scale, "nothing else changes");

    let unknown = store.set_collection_error(Uuid::new_v4(), None).await;
    assert_not_found(unknown, "set_collection_error of an unknown instance");
}

/// A single holder's claim returns every monitored instance and no unmonitored one.
pub async fn claim_returns_monitored(store: Arc<dyn Store>) {
    let watched = create_instance(store.as_ref()).await;
    let idle = create_instance(store.as_ref()).await;
    store
        .set_monitoring(&watched.instance_id, true)
        .await
        .expect("set_monitoring");
    let claimed: Vec<Uuid> = store
        .claim_monitored(Uuid::new_v4(), Duration::from_secs(60), Utc::now())
        .await
        .expect("claim_monitored")
        .into_iter()
        .map(|instance| instance.id)
        .collect();
    assert!(
        claimed.contains(&watched.id),
        "the monitored instance is claimed"
    );
    assert!(
        !claimed.contains(&idle.id),
        "an unmonitored instance is not claimed"
    );
}
