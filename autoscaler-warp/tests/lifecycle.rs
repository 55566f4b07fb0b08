//! Start-up, configuration, logging, shutdown and restart of the real binary.

mod common;

use common::{Launch, Server, eventually, run_to_exit};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn newest_timestamp(metrics: &[Value]) -> Option<String> {
    metrics
        .first()
        .and_then(|m| m["timestamp"].as_str())
        .map(str::to_owned)
}

#[tokio::test]
async fn monitoring_survives_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::ticks(1);

    let first = Server::start(dir.path(), &launch);
    let api = first.api().sign_up("ops@example.com", "longenough").await;
    api.register_instance("mock-restart", true).await;
    let started = api.patch("/api/instances/mock-restart/monitor/start").await;
    assert_eq!(started.status, StatusCode::OK);
    eventually("a sample before the restart", || async {
        newest_timestamp(&api.metrics("mock-restart").await)
    })
    .await;
    let status = first.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(dir.path().join("data/jwt_secret").exists());

    let second = Server::start(dir.path(), &launch);
    // The generated secret is kept, so the token from before the restart still works.
    let api = api.on(&second);
    let before = newest_timestamp(&api.metrics("mock-restart").await).expect("stored sample");
    let after = eventually("a sample after the restart", || async {
        newest_timestamp(&api.metrics("mock-restart").await).filter(|newest| *newest > before)
    })
    .await;
    assert!(after > before);
    let instance = api.instance("mock-restart").await;
    assert_eq!(instance["is_monitoring"], true);

    // A second process on the same data directory fails with a clear message.
    let (status, output) = run_to_exit(dir.path(), &launch);
    assert!(!status.success(), "second server started: {output}");
    assert!(output.contains("opening the database failed"), "{output}");

    let status = second.stop_with("INT");
    assert!(status.success(), "exit status after SIGINT: {status}");
}

#[tokio::test]
async fn logs_requests_without_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &Launch::ticks(60));
    let api = server
        .api()
        .sign_up("ops@example.com", "a-secret-password")
        .await;
    let token = api.token.clone().expect("token");
    let reply = api.get("/api/instances/?limit=5").await;
    assert_eq!(reply.status, StatusCode::OK);

    let line = eventually("the request log line", || async {
        let output = server.output();
        output
            .lines()
            .find(|line| line.contains("method=GET") && line.contains("/api/instances/"))
            .map(str::to_owned)
    })
    .await;
    assert!(line.contains("status=200"), "{line}");
    assert!(line.contains("latency="), "{line}");
    let output = server.output();
    assert!(!output.contains(&token), "token in log");
    assert!(!output.contains("a-secret-password"), "password in log");

    let status = server.stop();
    assert!(status.success());
    // One file per UTC day, so a run across midnight leaves two.
    let mut logged = String::new();
    let entries = std::fs::read_dir(dir.path().join("logs")).expect("log directory");
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("autoscaler-server."), "{name}");
        assert!(name.ends_with(".log"), "{name}");
        logged.push_str(&std::fs::read_to_string(entry.path()).expect("log file"));
    }
    assert!(logged.contains("listening"), "{logged}");
    assert!(logged.contains("method=POST"), "{logged}");
}

#[test]
fn help_documents_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch {
        args: vec!["--help".to_owned()],
        ..Launch::default()
    };
    let (status, output) = run_to_exit(dir.path(), &launch);
    assert!(status.success());
    let expected = [
        "--bind",
        "[env: BIND_ADDRESS=",
        "[default: 0.0.0.0:5000]",
        "--data-dir",
        "--log-dir",
        "DATABASE_URL",
        "JWT_SECRET_KEY",
        "--collect-interval-secs",
        "[default: 30]",
        "--decide-interval-secs",
        "[default: 15]",
        "--window-secs",
        "[default: 300]",
        "--cooldown-secs",
        "--min-level",
        "--max-level",
        "--recommend-only",
        "--max-body-bytes",
        "--max-simulated-samples",
        "--cloudwatch-period-secs",
        "Seconds between metric collections",
        "--retention-days",
        "[env: RETENTION_DAYS=] [default: 7]",
        "0 keeps everything",
        "--purge-interval-secs",
        "--purge-batch-size",
    ];
    for text in expected {
        assert!(output.contains(text), "--help lacks {text}:\n{output}");
    }
}

#[test]
fn invalid_settings_stop_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inverted = Launch::default()
        .arg("--min-level", "5")
        .arg("--max-level", "3");
    let (status, output) = run_to_exit(dir.path(), &inverted);
    assert!(!status.success());
    assert!(output.contains("invalid policy min_level"), "{output}");

    let postgres = Launch::default().env("DATABASE_URL", "postgres://127.0.0.1:1/none");
    let (status, output) = run_to_exit(dir.path(), &postgres);
    assert!(!status.success());
    assert!(
        output.contains("JWT_SECRET_KEY is required with DATABASE_URL"),
        "{output}"
    );

    // The original service's URL form, with a password that must not reach the output.
    let url = "postgresql://admin:s3cret-pw@127.0.0.1:1/autoscaler?sslmode=require";
    let (status, output) = run_to_exit(dir.path(), &Launch::default().env("DATABASE_URL", url));
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains("JWT_SECRET_KEY is required with DATABASE_URL"),
        "{output}"
    );
    assert!(!output.contains("s3cret-pw"), "{output}");

    let (status, output) = run_to_exit(dir.path(), &Launch::default().arg("--bind", "nowhere"));
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("--bind"), "{output}");
}

#[tokio::test]
async fn dotenv_file_is_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(".env"),
        format!("JWT_SECRET_KEY=\"{}\"\n", common::TEST_SECRET),
    )
    .expect("write .env");
    let server = Server::start(dir.path(), &Launch::ticks(60));
    let api = server.api().sign_up("ops@example.com", "longenough").await;
    let me = api.get("/api/auth/me").await;
    let user_id = me.body["user_id"].as_str().expect("user id");

    // A token signed with the secret from .env is accepted.
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": user_id, "iat": now, "exp": now + 60});
    let key = jsonwebtoken::EncodingKey::from_secret(common::TEST_SECRET.as_bytes()).expect("key");
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("token");
    let reply = api.with_token(&token).get("/api/auth/me").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(!dir.path().join("data/jwt_secret").exists());
}
