//! Values at the edges of the accepted ranges: the server stores them and keeps working.

mod common;

use chrono::{SecondsFormat, TimeDelta, Utc};
use common::{Launch, Server, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Network values near `f64::MAX` are valid samples, but fences computed from them overflow.
/// The decisions made from them must still read back.
#[tokio::test]
async fn huge_network_values_keep_decisions_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &Launch::ticks(60));
    let api = server.api();
    let user = api.sign_up("huge@example.com", "longenough").await;
    user.register_instance("huge-1", true).await;

    let now = Utc::now();
    let samples: Vec<Value> = (1..=8)
        .map(|steps_back| {
            let at = now - TimeDelta::seconds(30 * steps_back);
            let network_in = if steps_back % 2 == 0 { 1e307 } else { f64::MAX };
            json!({
                "timestamp": at.to_rfc3339_opts(SecondsFormat::Micros, true),
                "cpu_utilization": 50.0,
                "memory_usage": 50.0,
                "network_in": network_in,
                "network_out": 1000.0,
            })
        })
        .collect();
    let pushed = user
        .post(
            "/api/metrics/push",
            json!({"instance_id": "huge-1", "samples": samples}),
        )
        .await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{:?}", pushed.body);
    let started = user.patch("/api/instances/huge-1/monitor/start").await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);

    let decision = eventually("a decision on the huge values", || {
        let user = user.clone();
        async move {
            let reply = user.get("/api/metrics/decisions/huge-1?limit=1").await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            reply.body["decisions"].as_array()?.first().cloned()
        }
    })
    .await;
    let fences = &decision["evidence"]["iqr"]["signals"][2]["fences"];
    assert_eq!(fences["upper"], json!(f64::MAX), "{decision:?}");
}
