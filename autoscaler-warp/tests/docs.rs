//! Swagger UI and the OpenAPI document, served by the real binary.

mod common;

use std::collections::BTreeSet;

use common::{Launch, Server};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn swagger_ui_and_openapi_document() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &Launch::ticks(60));
    let client = reqwest::Client::new();

    let page = client
        .get(format!("{}/api/docs", server.base))
        .send()
        .await
        .expect("docs page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), "/api/docs/");
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");

    let initializer = client
        .get(format!("{}/api/docs/swagger-initializer.js", server.base))
        .send()
        .await
        .expect("initializer");
    assert_eq!(initializer.status(), StatusCode::OK);
    let script = initializer.text().await.expect("script");
    assert!(script.contains("/api/openapi.json"), "{script}");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js"] {
        let response = client
            .get(format!("{}/api/docs/{asset}", server.base))
            .send()
            .await
            .expect("asset");
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }

    let response = client
        .get(format!("{}/api/openapi.json", server.base))
        .send()
        .await
        .expect("document");
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.expect("valid JSON");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer_auth"]["scheme"],
        "bearer"
    );

    let paths: BTreeSet<&str> = document["paths"]
        .as_object()
        .expect("paths object")
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "/api/",
        "/api/status",
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/me",
        "/api/instances/",
        "/api/instances/{instance_id}/monitor/start",
        "/api/instances/{instance_id}/monitor/stop",
        "/api/metrics/{instance_id}",
        "/api/metrics/decisions/{instance_id}",
        "/api/metrics/simulate",
        "/api/metrics/push",
    ]
    .into_iter()
    .collect();
    assert_eq!(paths, expected);

    let operations = [
        ("/api/instances/", "get"),
        ("/api/instances/", "post"),
        ("/api/auth/me", "get"),
        ("/api/metrics/push", "post"),
    ];
    for (path, method) in operations {
        let operation = &document["paths"][path][method];
        assert_eq!(
            operation["security"][0]["bearer_auth"],
            serde_json::json!([]),
            "{method} {path} lacks bearer auth"
        );
        assert!(
            operation["responses"]["401"].is_object(),
            "{method} {path} lacks the 401 response"
        );
    }
    for (path, item) in document["paths"].as_object().expect("paths object") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} documents no success response"
            );
            // The health check and the replica status read no database.
            let mut needed = if path == "/api/" || path == "/api/status" {
                vec![]
            } else {
                vec!["500", "503"]
            };
            if method == "post" {
                needed.extend(["400", "413", "415"]);
            }
            for status in needed {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }

    let login = &document["paths"]["/api/auth/login"]["post"];
    assert!(login["security"].is_null(), "login needs no token");
    assert!(login["responses"]["401"].is_object());
}
