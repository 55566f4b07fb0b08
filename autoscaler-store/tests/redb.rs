//! The conformance suite and file-level behaviour of `RedbStore`, on real database files in
//! temporary directories.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use autoscaler_core::conformance;
use autoscaler_core::store::{Error, NewUser, Store};
use autoscaler_store::RedbStore;
use chrono::{DateTime, TimeDelta, Utc};
use tempfile::TempDir;

async fn fresh_database() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

async fn open_store(dir: &TempDir) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(database_path(dir.path())).expect("open the database file"))
}

fn database_path(dir: &Path) -> PathBuf {
    dir.join("autoscaler.redb")
}

autoscaler_core::store_conformance_tests!(fresh_database, open_store);

/// Environment variable that tells a helper below which database file to use; the helpers do
/// nothing without it.
const HELPER_PATH: &str = "AUTOSCALER_REDB_HELPER_PATH";

/// Line a helper prints once the database is open and written.
const READY: &str = "helper-ready";

/// Starts this test binary again, running only the ignored helper `name` on `path`.
fn spawn_helper(name: &str, path: &Path) -> Child {
    let exe = std::env::current_exe().expect("path of the test binary");
    Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_PATH, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the helper process")
}

/// Reads the helper's output until it reports that it is ready, then drains the rest on a
/// thread so that the helper never writes into a closed pipe.
fn wait_until_ready(child: &mut Child) {
    let stdout = child.stdout.take().expect("helper stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.trim() == READY => {
                std::thread::spawn(move || lines.for_each(drop));
                return;
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("reading the helper's output failed: {error}"),
            None => panic!("the helper exited before it was ready"),
        }
    }
}

fn helper_path() -> Option<PathBuf> {
    std::env::var_os(HELPER_PATH).map(PathBuf::from)
}

/// Helper process: holds the database open until its standard input closes.
#[test]
#[ignore = "started by second_process_gets_unavailable"]
fn helper_hold_database_open() {
    let Some(path) = helper_path() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _store = RedbStore::open(&path).expect("the helper opens the database");
    println!("\n{READY}");
    std::io::stdout().flush().expect("flush stdout");
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    drop(runtime);
}

#[test]
fn second_process_gets_unavailable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = database_path(dir.path());
    let mut holder = spawn_helper("helper_hold_database_open", &path);
    wait_until_ready(&mut holder);

    let error = RedbStore::open(&path).expect_err("the file is held by the helper");
    let message = error.to_string();
    assert!(
        matches!(error, Error::Unavailable { .. }),
        "expected Unavailable, got {error:?}"
    );
    assert!(
        message.contains("another process holds the database file"),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");

    drop(holder.stdin.take());
    let status = holder.wait().expect("wait for the helper");
    assert!(status.success(), "the helper failed: {status}");
    RedbStore::open(&path).expect("the file opens once the helper is gone");
}

#[test]
fn second_open_in_one_process_gets_unavailable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = database_path(dir.path());
    let first = RedbStore::open(&path).expect("first open");
    let error = RedbStore::open(&path).expect_err("the file is open already");
    assert!(
        matches!(error, Error::Unavailable { .. }),
        "expected Unavailable, got {error:?}"
    );
    drop(first);
    RedbStore::open(&path).expect("the file opens once the first store is dropped");
}

/// Helper process: writes a user and samples, reports them written, and aborts without closing
/// the database, as a crash would.
#[test]
#[ignore = "started by acknowledged_writes_survive_abort"]
fn helper_write_then_abort() {
    let Some(path) = helper_path() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = RedbStore::open(&path).expect("the helper opens the database");
        let user = store
            .create_user(NewUser {
                email: "crash@example.com".into(),
                password_hash: "hash".into(),
            })
            .await
            .expect("create_user");
        let instance = store
            .create_instance(autoscaler_core::store::NewInstance {
                owner_id: user.id,
                instance_id: "mock-crash".into(),
                instance_type: "t2.micro".into(),
                region: "mock".into(),
                is_mock: true,
            })
            .await
            .expect("create_instance");
        let batch: Vec<_> = (0..20).map(|i| (instance.id, crash_sample(i))).collect();
        store.append_samples(&batch).await.expect("append_samples");
    });
    println!("\n{READY}");
    std::io::stdout().flush().expect("flush stdout");
    std::process::abort();
}

fn crash_sample(i: i64) -> autoscaler_core::Sample {
    let at = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000) + TimeDelta::seconds(30 * i);
    autoscaler_core::Sample::new(at, 40.0 + i as f64, Some(45.0), 1e6, 5e5).expect("valid sample")
}

#[tokio::test]
async fn acknowledged_writes_survive_abort() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = database_path(dir.path());
    let mut writer = spawn_helper("helper_write_then_abort", &path);
    wait_until_ready(&mut writer);
    let status = writer.wait().expect("wait for the helper");
    assert!(
        !status.success(),
        "the helper must abort, not exit cleanly: {status}"
    );

    let store = RedbStore::open(&path).expect("the file opens after the crash");
    let user = store
        .user_by_email("crash@example.com")
        .await
        .expect("user_by_email");
    assert!(user.is_some(), "the acknowledged user survives the crash");
    let instance = store
        .instance("mock-crash")
        .await
        .expect("instance")
        .expect("the acknowledged instance survives the crash");
    let samples = store
        .recent_samples(instance.id, 100)
        .await
        .expect("recent_samples");
    assert_eq!(
        samples.len(),
        20,
        "every acknowledged sample survives the crash"
    );
    assert_eq!(samples[0].sample, crash_sample(19));
}

#[test]
fn open_names_missing_directory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("absent").join("autoscaler.redb");
    let error = RedbStore::open(&path).expect_err("the parent directory does not exist");
    assert!(
        matches!(error, Error::Backend { .. }),
        "expected Backend, got {error:?}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn open_rejects_foreign_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "not a database, just some text that is long enough".repeat(100),
    )
    .expect("write the file");
    let error = RedbStore::open(&path).expect_err("a text file is not a database");
    assert!(
        matches!(error, Error::Backend { .. }),
        "expected Backend, got {error:?}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn open_rejects_other_schema_version() {
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = database_path(dir.path());
    drop(RedbStore::open(&path).expect("create the database"));
    {
        let db = redb::Database::open(&path).expect("open with redb");
        let txn = db.begin_write().expect("write transaction");
        txn.open_table(META)
            .expect("table meta")
            .insert("schema_version", 99)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let error = RedbStore::open(&path).expect_err("version 99 is unknown");
    let message = error.to_string();
    assert!(
        matches!(error, Error::Backend { .. }),
        "expected Backend, got {error:?}"
    );
    assert!(message.contains("schema version 99"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_passes_checks() {
    let open = || -> Arc<dyn Store> { Arc::new(RedbStore::in_memory().expect("in-memory store")) };
    conformance::user_concurrent_create_one_wins(open()).await;
    conformance::instances_by_owner_oldest_first(open()).await;
    conformance::append_dedupes_by_timestamp(open()).await;
    conformance::windows_read_many_instances(open()).await;
    conformance::evaluation_applies_atomically(open()).await;
    conformance::evaluation_race_applies_once(open()).await;
    conformance::purge_deletes_only_older_rows(open()).await;
}

#[test]
fn location_names_file_or_memory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = database_path(dir.path());
    let store = RedbStore::open(&path).expect("open");
    assert_eq!(store.location(), path.display().to_string());
    let memory = RedbStore::in_memory().expect("in-memory store");
    assert_eq!(memory.location(), "memory");
}

async fn memory_instance() -> (RedbStore, autoscaler_core::store::Instance) {
    let store = RedbStore::in_memory().expect("in-memory store");
    let owner = store
        .create_user(NewUser {
            email: "ops@example.com".into(),
            password_hash: "hash".into(),
        })
        .await
        .expect("create_user");
    let instance = store
        .create_instance(autoscaler_core::store::NewInstance {
            owner_id: owner.id,
            instance_id: "mock-1".into(),
            instance_type: "t2.micro".into(),
            region: "mock".into(),
            is_mock: true,
        })
        .await
        .expect("create_instance");
    (store, instance)
}

#[tokio::test]
async fn timestamps_truncate_to_microseconds() {
    let (store, instance) = memory_instance().await;
    let at = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
    let first =
        autoscaler_core::Sample::new(at + TimeDelta::nanoseconds(1_500), 10.0, None, 1.0, 1.0)
            .expect("valid sample");
    let second = first.at(at + TimeDelta::nanoseconds(1_900));
    let added = store
        .append_samples(&[(instance.id, first), (instance.id, second)])
        .await
        .expect("append_samples");
    assert_eq!(added, 1, "samples within one microsecond are one sample");
    let stored = store
        .recent_samples(instance.id, 10)
        .await
        .expect("recent_samples");
    assert_eq!(
        stored[0].sample.timestamp(),
        at + TimeDelta::microseconds(1)
    );
}

#[tokio::test]
async fn flagging_missing_sample_not_found() {
    let (store, instance) = memory_instance().await;
    let now = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
    // A sustained-high window that was never stored, so the sample to flag does not exist.
    let window: Vec<autoscaler_core::WindowSample> = (0..5)
        .map(|i| {
            let at = now - TimeDelta::seconds(30 * i);
            autoscaler_core::Sample::new(at, 95.0, Some(50.0), 1.0, 1.0)
                .expect("valid sample")
                .into()
        })
        .collect();
    let policy = autoscaler_core::Policy::default();
    let evaluation = autoscaler_core::evaluate(&policy, &window, now, &instance.scale);
    assert!(evaluation.flags_latest());
    let record = autoscaler_core::store::NewDecisionRecord {
        instance: instance.id,
        evaluated_at: now,
        expected: instance.scale,
        evaluation,
    };

    let error = store
        .record_evaluation(record)
        .await
        .expect_err("the sample to flag is missing");
    assert!(
        matches!(
            error,
            Error::NotFound {
                entity: "sample",
                ..
            }
        ),
        "{error:?}"
    );
    let after = store
        .instance("mock-1")
        .await
        .expect("instance")
        .expect("the instance exists");
    assert_eq!(after.scale, instance.scale, "nothing is applied");
    let history = store
        .recent_decisions(instance.id, 10)
        .await
        .expect("recent_decisions");
    assert!(history.is_empty(), "nothing is recorded");
}
