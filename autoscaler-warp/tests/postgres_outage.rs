//! The server while its PostgreSQL database goes away and comes back: requests get a 503 JSON
//! error, the ticks log their failures and retry, and both recover without a restart of the
//! server.
//!
//! The database is a throwaway cluster in a temporary directory on a free loopback port, made
//! with `initdb` and stopped and started by the test; the shared test server is never stopped.

mod common;
#[path = "../../autoscaler-store/tests/postgres_support/mod.rs"]
mod postgres_support;

use autoscaler_warp::errors::DATABASE_UNAVAILABLE;
use common::{Api, Launch, Server, eventually};
use postgres_support::cluster::Cluster;
use reqwest::StatusCode;

const INSTANCE: &str = "mock-outage";

/// Log message of a tick that failed and runs again one period later.
const TICK_RETRY_MESSAGE: &str = "tick failed; retrying next period";

#[tokio::test(flavor = "multi_thread")]
async fn outage_gives_503_then_recovers() {
    let cluster = Cluster::init();
    cluster.start();
    let dir = tempfile::tempdir().expect("temp dir");
    // A mock sample every 2 s, so that the ticks run into the outage within seconds.
    let server = Server::start(dir.path(), &Launch::ticks(2).postgres(&cluster.url()));
    let api = server.api().sign_up("ops@example.com", "longenough").await;
    api.register_instance(INSTANCE, true).await;
    let started = api
        .patch(&format!("/api/instances/{INSTANCE}/monitor/start"))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);

    // A fast shutdown ends open sessions with an error message; an immediate one drops them as
    // a crash would.
    for mode in ["fast", "immediate"] {
        let samples_before = wait_for_new_sample(&api, 0).await;
        let decisions_before = api.decisions(INSTANCE).await.len();
        let retries_before = collection_retries(&server.output());

        cluster.stop(mode);
        for path in ["/api/instances/", "/api/auth/me"] {
            let reply = api.get(path).await;
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{mode} {path}"
            );
            assert_eq!(reply.error(), DATABASE_UNAVAILABLE, "{mode} {path}");
        }
        let credentials = serde_json::json!({"email": "ops@example.com", "password": "longenough"});
        let login = api.post("/api/auth/login", credentials).await;
        assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{mode}");
        assert_eq!(login.error(), DATABASE_UNAVAILABLE, "{mode}");
        let health = api.get("/api/").await;
        assert_eq!(
            health.status,
            StatusCode::OK,
            "{mode}: the health check needs no database"
        );

        eventually("a logged collection tick failure", || async {
            (collection_retries(&server.output()) > retries_before).then_some(())
        })
        .await;

        cluster.start();
        eventually("a successful request after the restart", || async {
            (api.get("/api/instances/").await.status == StatusCode::OK).then_some(())
        })
        .await;
        wait_for_new_sample(&api, samples_before).await;
        eventually("a decision recorded after the restart", || async {
            (api.decisions(INSTANCE).await.len() > decisions_before).then_some(())
        })
        .await;
    }

    assert!(server.stop().success());
}

/// Waits until the instance has more than `count` samples and returns the new count.
async fn wait_for_new_sample(api: &Api, count: usize) -> usize {
    eventually("a new mock sample", || async {
        let stored = api.metrics(INSTANCE).await.len();
        (stored > count).then_some(stored)
    })
    .await
}

/// Counts the collection ticks in `output` that failed because the store was unavailable.
fn collection_retries(output: &str) -> usize {
    output
        .lines()
        .filter(|line| line.contains(TICK_RETRY_MESSAGE))
        .filter(|line| line.contains("tick=\"collection\""))
        .filter(|line| line.contains("store unavailable"))
        .count()
}
