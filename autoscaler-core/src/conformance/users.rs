//! Checks of user records.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use super::support::{
    PASSWORD_HASH, RACERS, assert_conflict, assert_recent, race, single_winner, unique_email,
};
use crate::store::{NewUser, Store};

/// A created user keeps its fields and is found by exact e-mail and by id.
pub async fn user_create_and_find(store: Arc<dyn Store>) {
    let before = Utc::now();
    let email = unique_email();
    let user = store
        .create_user(NewUser {
            email: email.clone(),
            password_hash: PASSWORD_HASH.into(),
        })
        .await
        .expect("create_user");
    assert_eq!(user.email, email);
    assert_eq!(user.password_hash, PASSWORD_HASH);
    assert_recent(user.created_at, before, "user created_at");

    let by_email = store.user_by_email(&email).await.expect("user_by_email");
    assert_eq!(
        by_email.as_ref(),
        Some(&user),
        "user_by_email returns the created user"
    );
    let by_id = store.user(user.id).await.expect("user");
    assert_eq!(by_id.as_ref(), Some(&user), "user returns the created user");
}

/// Looking up an unknown e-mail or id returns `None`, not an error.
pub async fn user_unknown_is_none(store: Arc<dyn Store>) {
    let by_email = store
        .user_by_email(&unique_email())
        .await
        .expect("user_by_email of an unknown e-mail");
    assert_eq!(by_email, None);
    let by_id = store
        .user(Uuid::new_v4())
        .await
        .expect("user of an unknown id");
    assert_eq!(by_id, None);
}

/// A second user with a taken e-mail gets `Conflict` and the first one is unchanged.
pub async fn user_duplicate_email_conflicts(store: Arc<dyn Store>) {
    let email = unique_email();
    let first = store
        .create_user(NewUser {
            email: email.clone(),
            password_hash: PASSWORD_HASH.into(),
        })
        .await
        .expect("create_user");
    let second = store
        .create_user(NewUser {
            email: email.clone(),
            password_hash: "another hash".into(),
        })
        .await;
    assert_conflict(second, "create_user with a taken e-mail");
    let stored = store.user_by_email(&email).await.expect("user_by_email");
    assert_eq!(stored, Some(first), "the first user stays as it was");
}

/// E-mails are compared exactly as given: letter case makes a different e-mail.
pub async fn user_email_compared_exactly(store: Arc<dyn Store>) {
    let lower = unique_email();
    let upper = lower.to_uppercase();
    let first = store
        .create_user(NewUser {
            email: lower.clone(),
            password_hash: PASSWORD_HASH.into(),
        })
        .await
        .expect("create_user");
    let found = store.user_by_email(&upper).await.expect("user_by_email");
    assert_eq!(found, None, "a lookup in other letter case finds nothing");
    let second = store
        .create_user(NewUser {
            email: upper.clone(),
            password_hash: PASSWORD_HASH.into(),
        })
        .await
        .expect("create_user with the e-mail in other letter case");
    assert_ne!(first.id, second.id);
}

/// Of many tasks that register one e-mail at the same time, exactly one succeeds.
pub async fn user_concurrent_create_one_wins(store: Arc<dyn Store>) {
    let email = unique_email();
    let results = race(&store, |store| {
        let email = email.clone();
        async move {
            store
                .create_user(NewUser {
                    email,
                    password_hash: PASSWORD_HASH.into(),
                })
                .await
        }
    })
    .await;
    assert_eq!(results.len(), RACERS);
    let winner = single_winner(results, "concurrent create_user");
    let stored = store.user_by_email(&email).await.expect("user_by_email");
    assert_eq!(stored, Some(winner), "the stored user is the winner");
}
