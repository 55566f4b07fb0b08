//! Databases of their own for tests on the PostgreSQL server at 127.0.0.1:5432, where user
//! `postgres` logs in without a password; `AUTOSCALER_TEST_DATABASE_URL` names another server.

use sqlx::{Connection, Executor, PgConnection};

/// The `postgres` database of the server the tests use when the variable is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, dropped by [`TestDatabase::drop_database`].
pub struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates an empty database.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached, saying how to provide one; the test fails rather
    /// than being skipped.
    pub async fn create() -> TestDatabase {
        let admin_url = std::env::var("AUTOSCALER_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL at {admin_url} is not reachable ({error}); start it or set \
                 AUTOSCALER_TEST_DATABASE_URL"
                )
            });
        let name = format!("autoscaler_warp_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        TestDatabase { admin_url, name }
    }

    /// Returns the database's connection URL.
    pub fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(base, _)| base);
        format!("{base}/{}", self.name)
    }

    /// Drops the database, disconnecting its remaining sessions.
    pub async fn drop_database(self) {
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
