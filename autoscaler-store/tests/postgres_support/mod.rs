//! Test databases on a PostgreSQL server, and throwaway clusters for outage tests.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;

use std::time::Duration;

use autoscaler_store::PgStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

/// Names the URL of the `postgres` database of the server the tests create databases on.
pub const URL_VARIABLE: &str = "AUTOSCALER_TEST_DATABASE_URL";

/// The server the tests use when [`URL_VARIABLE`] is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database named `autoscaler_test_<random>`.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached, with a message on how to provide one.
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let mut admin = admin_connection(&admin_url).await;
        let name = format!("autoscaler_test_{}", Uuid::new_v4().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|error| panic!("creating test database {name} failed: {error}"));
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        TestDatabase {
            admin_url,
            name,
            url,
        }
    }

    /// Returns the database's connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connects a migrated store to the database through [`PgStore::from_pool`].
    ///
    /// The pool is smaller than [`PgStore::connect`]'s, so that many tests running at once stay
    /// below the server's default limit of 100 connections, and it waits longer for a
    /// connection, so that a busy server slows the tests down instead of failing them.
    pub async fn store(&self) -> PgStore {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("connecting to {} failed: {error}", self.name));
        PgStore::from_pool(pool)
            .await
            .unwrap_or_else(|error| panic!("migrating {} failed: {error}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on a future, so the
        // statement runs on a thread with a runtime of its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|error| error.to_string())?;
                let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin
                    .execute(sqlx::AssertSqlSafe(statement))
                    .await
                    .map_err(|error| error.to_string())?;
                let _ = admin.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("dropping test database {} failed: {error}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

/// Returns the URL of the `postgres` database of the test server.
pub fn admin_url() -> String {
    std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Connects to the test server's `postgres` database, or panics saying how to start a server.
pub async fn admin_connection(admin_url: &str) -> PgConnection {
    match PgConnection::connect(admin_url).await {
        Ok(connection) => connection,
        Err(error) => {
            let server = if std::env::var(URL_VARIABLE).is_ok() {
                format!("the server named by {URL_VARIABLE}")
            } else {
                DEFAULT_URL.to_owned()
            };
            panic!(
                "PostgreSQL tests need a server, but connecting to {server} failed: {error}. \
                 Start PostgreSQL on 127.0.0.1:5432 with user postgres and trust authentication \
                 (for example `pg_ctlcluster 15 main start`, or `docker run -d -p 5432:5432 \
                 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15`), or set {URL_VARIABLE} to the \
                 URL of the `postgres` database of a server where the user may create databases"
            )
        }
    }
}

/// Returns `url` with its database replaced by `database`, keeping the query string.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut result = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}
