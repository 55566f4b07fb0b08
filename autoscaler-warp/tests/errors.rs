//! Every documented error response, with its exact status and message, over HTTP.

mod common;

use common::{Api, Launch, Reply, Server, TEST_SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn assert_error(reply: &Reply, status: StatusCode, message: &str) {
    assert_eq!(reply.status, status, "body {:?}", reply.body);
    assert_eq!(reply.error(), message);
}

fn assert_error_starts(reply: &Reply, status: StatusCode, prefix: &str) {
    assert_eq!(reply.status, status, "body {:?}", reply.body);
    assert!(reply.error().starts_with(prefix), "{:?}", reply.error());
}

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::ticks(60).env("JWT_SECRET_KEY", TEST_SECRET);
    let server = Server::start(dir.path(), &launch);
    (dir, server)
}

fn forge_token(claims: Value) -> String {
    let key = EncodingKey::from_secret(TEST_SECRET.as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("token")
}

#[tokio::test]
async fn register_and_login_errors() {
    let (_dir, server) = start();
    let api = server.api();
    let required = "Email and password are required";

    let bodies = [
        json!({}),
        json!({"email": "a@example.com"}),
        json!({"password": "longenough"}),
        json!({"email": "", "password": "longenough"}),
        json!({"email": "a@example.com", "password": ""}),
        json!({"email": null, "password": "longenough"}),
    ];
    for body in &bodies {
        let reply = api.post("/api/auth/register", body.clone()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, required);
        let reply = api.post("/api/auth/login", body.clone()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, required);
    }

    let reply = api
        .post(
            "/api/auth/register",
            json!({"email": "not-an-email", "password": "longenough"}),
        )
        .await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "Invalid email 'not-an-email'",
    );
    let reply = api
        .post(
            "/api/auth/register",
            json!({"email": "a@example.com", "password": "short"}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "Password must be at least 8 characters (got 5)",
    );

    api.sign_up("owner@example.com", "longenough").await;
    let reply = api
        .post(
            "/api/auth/register",
            json!({"email": "OWNER@Example.com", "password": "different1"}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "User with this email already exists",
    );

    let wrong_password = json!({"email": "owner@example.com", "password": "wrong-password"});
    let reply = api.post("/api/auth/login", wrong_password).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "Invalid credentials");
    let unknown = json!({"email": "nobody@example.com", "password": "longenough"});
    let reply = api.post("/api/auth/login", unknown).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "Invalid credentials");

    let mixed_case = json!({"email": "Owner@EXAMPLE.com", "password": "longenough"});
    let reply = api.post("/api/auth/login", mixed_case).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["message"], "Login successful");
}

#[tokio::test]
async fn token_errors() {
    let (_dir, server) = start();
    let api = server.api();
    let user = api.sign_up("me@example.com", "longenough").await;

    let reply = api.get("/api/auth/me").await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "Token is missing");
    let reply = api
        .raw(Method::GET, "/api/auth/me", |r| {
            r.header("authorization", "Basic abc")
        })
        .await;
    assert_error_starts(&reply, StatusCode::UNAUTHORIZED, "Token is missing");

    let reply = api.with_token("garbage").get("/api/auth/me").await;
    assert_error(
        &reply,
        StatusCode::UNAUTHORIZED,
        "Token is invalid; log in again to get a new one",
    );

    let me = user.get("/api/auth/me").await;
    assert_eq!(me.status, StatusCode::OK);
    let user_id = me.body["user_id"].as_str().expect("user id").to_owned();
    let now = chrono::Utc::now().timestamp();

    let expired = forge_token(json!({"sub": user_id, "iat": now - 90_000, "exp": now - 3_600}));
    let reply = api.with_token(&expired).get("/api/auth/me").await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "Token has expired");

    let valid = forge_token(json!({"sub": user_id, "iat": now, "exp": now + 3_600}));
    let reply = api.with_token(&valid).get("/api/auth/me").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    let stranger = uuid::Uuid::new_v4().to_string();
    let orphan = forge_token(json!({"sub": stranger, "iat": now, "exp": now + 3_600}));
    let reply = api.with_token(&orphan).get("/api/auth/me").await;
    assert_error(
        &reply,
        StatusCode::UNAUTHORIZED,
        "Token is invalid: its user no longer exists; log in again",
    );

    let protected = [
        (Method::GET, "/api/instances/"),
        (Method::POST, "/api/instances"),
        (Method::PATCH, "/api/instances/x/monitor/start"),
        (Method::PATCH, "/api/instances/x/monitor/stop"),
        (Method::GET, "/api/metrics/x"),
        (Method::GET, "/api/metrics/decisions/x"),
        (Method::POST, "/api/metrics/simulate"),
        (Method::POST, "/api/metrics/push"),
    ];
    for (method, path) in protected {
        let reply = api.send(method.clone(), path, Some(json!({}))).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "Token is missing");
        let reply = api
            .with_token(&expired)
            .send(method, path, Some(json!({})))
            .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "Token has expired");
    }
}

#[tokio::test]
async fn instance_errors() {
    let (_dir, server) = start();
    let api = server.api();
    let owner = api.sign_up("owner@example.com", "longenough").await;
    let other = api.sign_up("other@example.com", "longenough").await;
    let required = "instance_id, instance_type, and region are required";

    let incomplete = [
        json!({"instance_type": "t2.micro", "region": "mock", "is_mock": true}),
        json!({"instance_id": "m-1", "region": "mock", "is_mock": true}),
        json!({"instance_id": "m-1", "instance_type": "t2.micro", "is_mock": true}),
        json!({"instance_id": " ", "instance_type": "t2.micro", "region": "mock"}),
    ];
    for body in incomplete {
        let reply = owner.post("/api/instances/", body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, required);
    }

    let bad_ec2 = json!({"instance_id": "web-1", "instance_type": "t2.micro",
        "region": "us-east-1"});
    let reply = owner.post("/api/instances/", bad_ec2).await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "Invalid instance_id 'web-1'",
    );
    let bad_region = json!({"instance_id": "i-1234567890abcdef0", "instance_type": "t2.micro",
        "region": "mars-1", "is_mock": false});
    let reply = owner.post("/api/instances/", bad_region).await;
    assert_error_starts(&reply, StatusCode::BAD_REQUEST, "Invalid region 'mars-1'");
    let bad_type = json!({"instance_id": "m-1", "instance_type": "t2.micro",
        "region": "mock", "is_mock": "yes"});
    let reply = owner.post("/api/instances/", bad_type).await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "Invalid value for is_mock:",
    );

    owner.register_instance("mock-1", true).await;
    owner.register_instance("i-1234567890abcdef0", false).await;
    let again = json!({"instance_id": "mock-1", "instance_type": "t2.micro",
        "region": "mock", "is_mock": true});
    let reply = owner.post("/api/instances", again.clone()).await;
    assert_error(&reply, StatusCode::CONFLICT, "Instance already registered");
    let reply = other.post("/api/instances/", again).await;
    assert_error(&reply, StatusCode::CONFLICT, "Instance already registered");

    for action in ["start", "stop"] {
        let path = format!("/api/instances/unknown-1/monitor/{action}");
        let reply = owner.patch(&path).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "Instance not found");
        let path = format!("/api/instances/mock-1/monitor/{action}");
        let reply = other.patch(&path).await;
        assert_error(
            &reply,
            StatusCode::FORBIDDEN,
            "Unauthorized: You don't own this instance",
        );
    }

    let reply = owner.patch("/api/instances/mock-1/monitor/stop").await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "Monitoring is not active for this instance",
    );
    let reply = owner.patch("/api/instances/mock-1/monitor/start").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = owner.patch("/api/instances/mock-1/monitor/start").await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "Monitoring is already active for this instance",
    );
    let reply = owner.patch("/api/instances/mock-1/monitor/stop").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["message"], "Monitoring stopped successfully");

    let listed = other.get("/api/instances").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["instances"], json!([]));
}

#[tokio::test]
async fn metric_errors() {
    let (_dir, server) = start();
    let api = server.api();
    let owner = api.sign_up("owner@example.com", "longenough").await;
    let other = api.sign_up("other@example.com", "longenough").await;
    owner.register_instance("mock-1", true).await;

    for path in ["/api/metrics/", "/api/metrics/decisions/"] {
        let reply = owner.get(&format!("{path}unknown-1")).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "Instance not found");
        let reply = other.get(&format!("{path}mock-1")).await;
        assert_error(
            &reply,
            StatusCode::FORBIDDEN,
            "Unauthorized: You don't own this instance",
        );
        for limit in ["0", "1001", "ten", "-1"] {
            let reply = owner.get(&format!("{path}mock-1?limit={limit}")).await;
            let message = format!("Invalid limit '{limit}': must be an integer from 1 to 1000");
            assert_error(&reply, StatusCode::BAD_REQUEST, &message);
        }
    }

    let simulate = |body: Value| {
        let owner = owner.clone();
        async move { owner.post("/api/metrics/simulate", body).await }
    };
    let reply = simulate(json!({"instance_id": "mock-1"})).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "instance_id and cpu_utilization are required",
    );
    let reply = simulate(json!({"instance_id": "mock-1", "cpu_utilization": 120})).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "cpu_utilization: must not exceed 100 (got 120)",
    );
    let reply = simulate(json!({"instance_id": "mock-1", "cpu_utilization": 50,
        "memory_usage": -1}))
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "memory_usage: must not be negative (got -1)",
    );
    let reply = simulate(json!({"instance_id": "mock-1", "cpu_utilization": 50,
        "duration_minutes": 10, "interval_seconds": 0}))
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "Invalid interval_seconds 0: must be an integer from 1 to duration_minutes * 60 (600)",
    );
    let reply = simulate(json!({"instance_id": "mock-1", "cpu_utilization": 50,
        "duration_minutes": 0}))
    .await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "Invalid duration_minutes 0",
    );
    let reply = simulate(json!({"instance_id": "mock-1", "cpu_utilization": 50,
        "duration_minutes": 2.5}))
    .await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "Invalid value for duration_minutes:",
    );
    let reply = simulate(json!({"instance_id": "mock-1", "cpu_utilization": 50,
        "duration_minutes": 1000, "interval_seconds": 1}))
    .await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "Simulation would create 60000 samples",
    );
    let reply = simulate(json!({"instance_id": "unknown-1", "cpu_utilization": 50})).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "Instance not found");
    let reply = other
        .post(
            "/api/metrics/simulate",
            json!({"instance_id": "mock-1", "cpu_utilization": 50, "duration_minutes": 1}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::FORBIDDEN,
        "Unauthorized: You don't own this instance",
    );

    assert!(
        owner.metrics("mock-1").await.is_empty(),
        "a rejected request stored samples"
    );
}

#[tokio::test]
async fn push_errors() {
    let (_dir, server) = start();
    let api = server.api();
    let owner = api.sign_up("owner@example.com", "longenough").await;
    let other = api.sign_up("other@example.com", "longenough").await;
    owner.register_instance("i-0123456789abcdef0", false).await;
    let push = |body: Value| {
        let owner = owner.clone();
        async move { owner.post("/api/metrics/push", body).await }
    };
    let sample =
        |timestamp: &str, cpu: Value| json!({"timestamp": timestamp, "cpu_utilization": cpu});

    let reply = push(json!({"samples": [sample("2026-01-01T00:00:00Z", json!(1))]})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "instance_id is required");
    let reply = push(json!({"instance_id": "i-0123456789abcdef0", "samples": []})).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "samples is required and must contain at least one sample",
    );

    let items = json!([
        sample("2026-01-01T00:00:00Z", json!(10)),
        sample("2026-01-01T00:05:00Z", json!(20)),
        sample("2026-01-01T00:10:00Z", json!(30)),
        sample("2026-01-01T00:15:00Z", json!(120)),
    ]);
    let reply = push(json!({"instance_id": "i-0123456789abcdef0", "samples": items})).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "samples[3].cpu_utilization: must not exceed 100 (got 120)",
    );
    let negative = json!([{"timestamp": "2026-01-01T00:00:00Z", "cpu_utilization": 5,
        "network_in": -3}]);
    let reply = push(json!({"instance_id": "i-0123456789abcdef0", "samples": negative})).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "samples[0].network_in: must not be negative (got -3)",
    );
    let no_cpu = json!([{"timestamp": "2026-01-01T00:00:00Z", "memory_usage": 5}]);
    let reply = push(json!({"instance_id": "i-0123456789abcdef0", "samples": no_cpu})).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "samples[0].cpu_utilization: missing",
    );
    let wrong_type = json!([sample("2026-01-01T00:00:00Z", json!("high"))]);
    let reply = push(json!({"instance_id": "i-0123456789abcdef0", "samples": wrong_type})).await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "Invalid value for samples[0].cpu_utilization:",
    );

    // JSON has no NaN; a client that writes one gets a syntax error, not a stored NaN.
    let reply = owner
        .raw(Method::POST, "/api/metrics/push", |r| {
            r.header("content-type", "application/json").body(
                r#"{"instance_id": "i-0123456789abcdef0",
                    "samples": [{"timestamp": "2026-01-01T00:00:00Z", "cpu_utilization": NaN}]}"#,
            )
        })
        .await;
    assert_error_starts(&reply, StatusCode::BAD_REQUEST, "Invalid JSON body:");

    let future = (chrono::Utc::now() + chrono::TimeDelta::minutes(10)).to_rfc3339();
    let reply = push(json!({"instance_id": "i-0123456789abcdef0",
        "samples": [sample(&future, json!(5))]}))
    .await;
    assert_error_starts(&reply, StatusCode::BAD_REQUEST, "samples[0].timestamp: ");
    assert!(
        reply.error().contains("more than 5 minutes in the future"),
        "{}",
        reply.error()
    );
    let reply = push(json!({"instance_id": "i-0123456789abcdef0",
        "samples": [sample("last tuesday", json!(5))]}))
    .await;
    assert_error_starts(
        &reply,
        StatusCode::BAD_REQUEST,
        "samples[0].timestamp: invalid value 'last tuesday'",
    );

    let reply = push(json!({"instance_id": "unknown-1",
        "samples": [sample("2026-01-01T00:00:00Z", json!(5))]}))
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "Instance not found");
    let reply = other
        .post(
            "/api/metrics/push",
            json!({"instance_id": "i-0123456789abcdef0",
                "samples": [sample("2026-01-01T00:00:00Z", json!(5))]}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::FORBIDDEN,
        "Unauthorized: You don't own this instance",
    );

    assert!(
        owner.metrics("i-0123456789abcdef0").await.is_empty(),
        "a rejected batch stored samples"
    );
}

#[tokio::test]
async fn request_format_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::ticks(60).arg("--max-body-bytes", "1024");
    let server = Server::start(dir.path(), &launch);
    let api: Api = server.api();

    let reply = api
        .raw(Method::POST, "/api/auth/register", |r| {
            r.header("content-type", "text/plain").body("email=a")
        })
        .await;
    assert_error(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type must be application/json (got text/plain)",
    );
    let reply = api
        .raw(Method::POST, "/api/auth/register", |r| {
            r.header("content-type", "application/json")
                .body("{\"email\": ")
        })
        .await;
    assert_error_starts(&reply, StatusCode::BAD_REQUEST, "Invalid JSON body:");
    let reply = api
        .raw(Method::POST, "/api/auth/login", |r| {
            r.header("content-type", "application/json")
        })
        .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "Request body is empty; send a JSON object",
    );
    let big = json!({"email": "a@example.com", "password": "x".repeat(2000)});
    let reply = api.post("/api/auth/register", big).await;
    assert_error(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request body is larger than 1024 bytes",
    );
    // A chunked body has no Content-Length; the limit applies while reading.
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 200])));
    let reply = api
        .raw(Method::POST, "/api/auth/login", |r| {
            r.header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(chunks))
        })
        .await;
    assert_error(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request body is larger than 1024 bytes",
    );

    let reply = api.get("/api/no-such-thing").await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "Not found: no such endpoint; the API is described at /api/docs",
    );
    let reply = api.send(Method::DELETE, "/api/instances/", None).await;
    assert_error(
        &reply,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed for this endpoint; the API is described at /api/docs",
    );
}

#[tokio::test]
async fn cors_allows_any_origin() {
    let (_dir, server) = start();
    let client = reqwest::Client::new();
    let preflight = client
        .request(Method::OPTIONS, format!("{}/api/instances/", server.base))
        .header("origin", "http://dashboard.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight reaches the server");
    assert_eq!(preflight.status(), StatusCode::OK);
    let allowed = preflight.headers().get("access-control-allow-origin");
    assert!(allowed.is_some(), "{:?}", preflight.headers());

    let error = client
        .get(format!("{}/api/auth/me", server.base))
        .header("origin", "http://dashboard.example")
        .send()
        .await
        .expect("request reaches the server");
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    let allowed = error.headers().get("access-control-allow-origin");
    assert!(allowed.is_some(), "error responses carry CORS headers too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_monitor_requests_one_wins() {
    let (_dir, server) = start();
    let api = server.api();
    let owner = api.sign_up("racer@example.com", "longenough").await;
    owner.register_instance("race-1", true).await;

    for (path, message) in [
        (
            "/api/instances/race-1/monitor/start",
            "Monitoring is already active for this instance",
        ),
        (
            "/api/instances/race-1/monitor/stop",
            "Monitoring is not active for this instance",
        ),
    ] {
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let owner = owner.clone();
                tokio::spawn(async move { owner.patch(path).await })
            })
            .collect();
        let mut succeeded = 0;
        for request in requests {
            let reply = request.await.expect("request task");
            if reply.status == StatusCode::OK {
                succeeded += 1;
            } else {
                assert_error(&reply, StatusCode::BAD_REQUEST, message);
            }
        }
        assert_eq!(
            succeeded, 1,
            "exactly one of 20 racing {path} requests succeeds"
        );
    }
}
