//! A throwaway PostgreSQL cluster in a temporary directory, on a free loopback port, that a
//! test may stop and start. The shared test server is never touched.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// Names a directory with `initdb`, `pg_ctl` and `postgres`, overriding the search.
pub const BIN_VARIABLE: &str = "AUTOSCALER_TEST_PG_BIN";

/// A cluster created by `initdb`, stopped (immediately) when dropped.
pub struct Cluster {
    dir: TempDir,
    bin: PathBuf,
    /// The uid and gid to run the server binaries as when the tests run as root, because
    /// PostgreSQL refuses to run as root.
    run_as: Option<(u32, u32)>,
    port: u16,
}

impl Cluster {
    /// Creates a cluster with trust authentication for user `postgres`; it is not started.
    ///
    /// # Panics
    ///
    /// When the binaries are missing or `initdb` fails, with the reason.
    pub fn init() -> Cluster {
        let bin = find_bin();
        let dir = tempfile::Builder::new()
            .prefix("autoscaler-pg-")
            .tempdir()
            .unwrap_or_else(|error| panic!("creating a temporary directory failed: {error}"));
        let run_as = server_user();
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), Some(uid), Some(gid)).unwrap_or_else(|error| {
                panic!("changing the owner of the cluster directory to postgres failed: {error}")
            });
        }
        let cluster = Cluster {
            dir,
            bin,
            run_as,
            port: free_port(),
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "--pgdata",
                path_str(&data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -h 127.0.0.1 -c fsync=off",
            self.port,
            path_str(self.dir.path())
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "--pgdata",
                path_str(&self.data_dir()),
                "--log",
                path_str(&log),
                "--options",
                &options,
                "--wait",
                "--timeout",
                "120",
                "start",
            ],
        );
    }

    /// Stops the server and waits until it is down. `mode` is a `pg_ctl stop` mode: `fast`
    /// ends open sessions with an error message, `immediate` kills the server processes as a
    /// crash would.
    pub fn stop(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &[
                "--pgdata",
                path_str(&self.data_dir()),
                "--mode",
                mode,
                "--wait",
                "--timeout",
                "120",
                "stop",
            ],
        );
    }

    /// Returns the URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Builds the command that runs `program`, as the `postgres` user when the tests run as
    /// root.
    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.current_dir(self.dir.path());
        command
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server binaries and panics with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("running {program} failed: {error}"));
        if !output.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed with {}:\n{}{}\nserver log:\n{log}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            );
        }
        output
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.data_dir().join("postmaster.pid").exists() {
            return;
        }
        let data = self.data_dir();
        let stopped = self
            .command("pg_ctl")
            .args([
                "--pgdata",
                path_str(&data),
                "--mode",
                "immediate",
                "--wait",
                "stop",
            ])
            .output();
        if !stopped.is_ok_and(|output| output.status.success()) {
            eprintln!(
                "stopping the throwaway cluster in {} failed",
                self.dir.path().display()
            );
        }
    }
}

/// Finds the directory with the server binaries: [`BIN_VARIABLE`], else the newest
/// `/usr/lib/postgresql/<version>/bin` (the Debian layout), else `pg_config --bindir`.
fn find_bin() -> PathBuf {
    if let Ok(dir) = std::env::var(BIN_VARIABLE) {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let output = Command::new("pg_config").arg("--bindir").output();
    match output {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        _ => panic!(
            "the outage tests need the PostgreSQL server binaries (initdb, pg_ctl, postgres): \
             install the PostgreSQL server package or set {BIN_VARIABLE} to their directory"
        ),
    }
}

/// Returns the uid and gid of the `postgres` user when the tests run as root.
fn server_user() -> Option<(u32, u32)> {
    let running_as_root = std::fs::metadata("/proc/self")
        .map(|metadata| metadata.uid() == 0)
        .unwrap_or(false);
    if !running_as_root {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap_or_else(|error| panic!("running id {flag} postgres failed: {error}"));
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "running as root, the outage tests start PostgreSQL as the OS user \
                     `postgres`, which does not exist"
                )
            })
    };
    Some((id("-u"), id("-g")))
}

/// Returns a loopback port that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|error| panic!("binding a loopback port failed: {error}"));
    listener
        .local_addr()
        .unwrap_or_else(|error| panic!("reading the bound port failed: {error}"))
        .port()
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not valid UTF-8", path.display()))
}
