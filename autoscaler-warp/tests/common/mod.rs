//! Harness for the integration tests: starts the real `autoscaler-server` binary on an
//! ephemeral loopback port with a temporary data directory, and talks to it over HTTP.

#![allow(dead_code, unreachable_pub)]

pub mod database;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Signing secret the tests pass in `JWT_SECRET_KEY` when they need to forge tokens.
pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// Maximum wait for the server to start, or for a condition in [`eventually`]. Generous
/// because a loaded CI machine may be slow; a passing run waits far less.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A running server process. Dropping it kills the process if it still runs.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

/// How to start a server.
#[derive(Clone, Default)]
pub struct Launch {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// Fast ticks for tests: collection every `collect` seconds, decisions every second.
    pub fn ticks(collect: u64) -> Launch {
        Launch::default().arg("--collect-interval-secs", &collect.to_string())
    }

    /// Adds `--name value`.
    pub fn arg(mut self, name: &str, value: &str) -> Launch {
        self.args.push(name.to_owned());
        self.args.push(value.to_owned());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs the server on the PostgreSQL database at `url`, with [`TEST_SECRET`], because
    /// PostgreSQL mode requires a configured signing secret.
    pub fn postgres(self, url: &str) -> Launch {
        self.env("DATABASE_URL", url)
            .env("JWT_SECRET_KEY", TEST_SECRET)
    }
}

/// Builds the server command: working directory `dir`, data and logs inside it, port 0, and an
/// environment that keeps the process on loopback.
pub fn command(dir: &Path, launch: &Launch) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoscaler-server"));
    command
        .current_dir(dir)
        .args(["--bind", "127.0.0.1:0", "--decide-interval-secs", "1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .args(&launch.args)
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET_KEY")
        .env_remove("BIND_ADDRESS")
        .env_remove("DATA_DIR")
        .env_remove("LOG_DIR")
        .env("RUST_LOG", "info")
        // No AWS call may leave the machine: no instance metadata, dummy credentials, and an
        // endpoint on a loopback port where nothing listens.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in &launch.env {
        command.env(name, value);
    }
    command
}

impl Server {
    /// Starts the server in `dir` and waits until it logs its listening address.
    pub fn start(dir: &Path, launch: &Launch) -> Server {
        let mut child = command(dir, launch).spawn().expect("server binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        collect_lines(stdout, Arc::clone(&logs), Some(address_tx));
        collect_lines(stderr, Arc::clone(&logs), None);

        let address = match address_rx.recv_timeout(PATIENCE) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not report its address; output:\n{}",
                    logs.lock().map(|l| l.join("\n")).unwrap_or_default()
                );
            }
        };
        Server {
            child,
            base: format!("http://{address}"),
            logs,
        }
    }

    /// Returns an API client without a token.
    pub fn api(&self) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: self.base.clone(),
            token: None,
        }
    }

    /// Returns everything the server printed so far.
    pub fn output(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Sends `signal` (for example `TERM`) and waits for the process to exit.
    pub fn stop_with(mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("kill command runs");
        assert!(sent.success(), "sending SIG{signal} failed");
        wait_for_exit(&mut self.child).unwrap_or_else(|| {
            panic!(
                "server did not exit after SIG{signal}; output:\n{}",
                self.output()
            )
        })
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(self) -> ExitStatus {
        self.stop_with("TERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for_exit(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Runs a server process to completion (for start-up failures and `--help`) and returns its
/// exit status and combined output.
pub fn run_to_exit(dir: &Path, launch: &Launch) -> (ExitStatus, String) {
    let mut child = command(dir, launch).spawn().expect("server binary starts");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let readers = [
        collect_lines(stdout, Arc::clone(&logs), None),
        collect_lines(stderr, Arc::clone(&logs), None),
    ];
    let Some(status) = wait_for_exit(&mut child) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("server process did not exit");
    };
    for reader in readers {
        let _ = reader.join();
    }
    let output = logs.lock().map(|l| l.join("\n")).unwrap_or_default();
    (status, output)
}

/// Reads `stream` line by line into `logs` on a thread; sends the `listening` address once.
fn collect_lines(
    stream: impl std::io::Read + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    address: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let (Some(sender), Some(value)) = (&address, listening_address(&line)) {
                let _ = sender.send(value.to_owned());
            }
            if let Ok(mut logs) = logs.lock() {
                logs.push(line);
            }
        }
    })
}

/// Returns the address of the server's `listening address=...` log line.
fn listening_address(line: &str) -> Option<&str> {
    if !line.contains(" listening ") {
        return None;
    }
    line.split("address=").nth(1).map(str::trim)
}

/// A JSON client for one server, optionally logged in.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Bearer token sent with every request, when set.
    pub token: Option<String>,
}

/// Status and parsed JSON body of a response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body, or `Value::Null` when the body is not JSON.
    pub body: Value,
}

impl Reply {
    /// Returns the `error` field of an error body.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<no error field>")
    }
}

impl Api {
    /// Returns a copy that sends `token`.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Returns a copy with the same token that talks to `server`.
    pub fn on(&self, server: &Server) -> Api {
        Api {
            base: server.base.clone(),
            ..self.clone()
        }
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the server");
        Reply::read(response).await
    }

    /// Sends a raw request built by `build` on top of the URL and the token, if set.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = build(request)
            .send()
            .await
            .expect("request reaches the server");
        Reply::read(response).await
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// POST `body` to `path`.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    /// PATCH `path` without a body.
    pub async fn patch(&self, path: &str) -> Reply {
        self.send(Method::PATCH, path, None).await
    }

    /// Registers `email` and logs in; returns a client with the token.
    pub async fn sign_up(&self, email: &str, password: &str) -> Api {
        let credentials = json!({"email": email, "password": password});
        let registered = self.post("/api/auth/register", credentials.clone()).await;
        assert_eq!(
            registered.status,
            StatusCode::CREATED,
            "{:?}",
            registered.body
        );
        let login = self.post("/api/auth/login", credentials).await;
        assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
        let token = login.body["token"]
            .as_str()
            .expect("token in login response");
        self.with_token(token)
    }

    /// Registers an instance and asserts 201.
    pub async fn register_instance(&self, instance_id: &str, is_mock: bool) -> Value {
        let region = if is_mock { "mock" } else { "us-east-1" };
        let body = json!({
            "instance_id": instance_id,
            "instance_type": "t2.micro",
            "region": region,
            "is_mock": is_mock,
        });
        let reply = self.post("/api/instances/", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["instance"].clone()
    }

    /// Returns the caller's instance `instance_id` from the instance list.
    pub async fn instance(&self, instance_id: &str) -> Value {
        let reply = self.get("/api/instances/").await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["instances"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["instance_id"] == instance_id))
            .cloned()
            .unwrap_or_else(|| panic!("{instance_id} not in {:?}", reply.body))
    }

    /// Returns up to 1000 decisions of `instance_id`, newest first.
    pub async fn decisions(&self, instance_id: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/api/metrics/decisions/{instance_id}?limit=1000"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["decisions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Returns up to 1000 samples of `instance_id`, newest first.
    pub async fn metrics(&self, instance_id: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/api/metrics/{instance_id}?limit=1000"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Reply {
    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body }
    }
}

/// Polls `check` every 200 ms until it returns `Some`, and panics with `what` after
/// [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Returns the directory of the workspace's test data.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata")
}
