//! The server on PostgreSQL (`DATABASE_URL`), against the server on 127.0.0.1:5432 where user
//! `postgres` logs in without a password; `AUTOSCALER_TEST_DATABASE_URL` names another one.

mod common;

use common::{Launch, Server, TEST_SECRET, eventually};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, dropped at the end.
struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    async fn create() -> TestDatabase {
        let admin_url = std::env::var("AUTOSCALER_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!("PostgreSQL at {admin_url} is not reachable ({error}); start it or set AUTOSCALER_TEST_DATABASE_URL")
        });
        let name = format!("autoscaler_warp_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        TestDatabase { admin_url, name }
    }

    fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(base, _)| base);
        format!("{base}/{}", self.name)
    }

    async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("admin connection");
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin
            .execute(sqlx::AssertSqlSafe(statement))
            .await
            .expect("drop test database");
    }
}

#[tokio::test]
async fn postgres_backend_serves_and_survives_restart() {
    let database = TestDatabase::create().await;
    // Mock samples every 5 s, so that they do not dilute the simulated load below the 80 %
    // share of the sustained rule before the decision tick evaluates it.
    let launch = Launch::ticks(5)
        .env("DATABASE_URL", &database.url())
        .env("JWT_SECRET_KEY", TEST_SECRET);

    let first_dir = tempfile::tempdir().expect("temp dir");
    let first = Server::start(first_dir.path(), &launch);
    assert!(
        first.output().contains("PostgreSQL database opened"),
        "{}",
        first.output()
    );
    let api = first.api().sign_up("ops@example.com", "longenough").await;
    api.register_instance("mock-pg", true).await;
    let started = api.patch("/api/instances/mock-pg/monitor/start").await;
    assert_eq!(started.status, StatusCode::OK);
    let load = json!({"instance_id": "mock-pg", "cpu_utilization": 95.0,
        "duration_minutes": 10, "interval_seconds": 30});
    let simulated = api.post("/api/metrics/simulate", load).await;
    assert_eq!(
        simulated.status,
        StatusCode::CREATED,
        "{:?}",
        simulated.body
    );
    eventually("an applied scale_up on PostgreSQL", || async {
        let decisions = api.decisions("mock-pg").await;
        decisions
            .iter()
            .any(|d| d["decision"] == "scale_up" && d["applied"] == true)
            .then_some(())
    })
    .await;
    assert!(first.stop().success());
    assert!(
        !first_dir.path().join("data").exists(),
        "PostgreSQL mode needs no data directory"
    );

    // Another server with another data directory reads the same users and instances, and
    // resumes monitoring, because the state lives in PostgreSQL.
    let second_dir = tempfile::tempdir().expect("temp dir");
    let second = Server::start(second_dir.path(), &launch);
    let api = api.on(&second);
    let instance = api.instance("mock-pg").await;
    assert_eq!(instance["current_scale_level"], 2);
    assert_eq!(instance["is_monitoring"], true);
    let before = api.metrics("mock-pg").await.len();
    eventually("a sample collected after the restart", || async {
        (api.metrics("mock-pg").await.len() > before).then_some(())
    })
    .await;
    assert!(second.stop().success());

    database.drop_database().await;
}

#[tokio::test]
async fn original_url_form_connects_over_tls() {
    let database = TestDatabase::create().await;
    let url = database.url();
    let (_, rest) = url.split_once("://").expect("URL has a scheme");
    let separator = if rest.contains('?') { '&' } else { '?' };
    let original_form = format!("postgresql://{rest}{separator}sslmode=require");

    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::ticks(60).postgres(&original_form);
    let server = Server::start(dir.path(), &launch);
    let api = server.api().sign_up("ops@example.com", "longenough").await;
    api.register_instance("mock-tls", true).await;

    // Every connection of the server's pool to the test database is encrypted.
    let mut observer = PgConnection::connect(&url).await.expect("connect");
    let (connections, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind(&database.name)
    .fetch_one(&mut observer)
    .await
    .expect("read pg_stat_ssl");
    let _ = observer.close().await;
    assert!(connections > 0, "the server has no connection open");
    assert_eq!(encrypted, connections);

    assert!(server.stop().success());
    database.drop_database().await;
}
