//! The crate inside async services: the tokio entry points on both runtime flavours, the
//! throwaway server's databases created and dropped from `#[tokio::test]`, errors instead of
//! panics, and the axum example answering a real request on loopback. Each of these panicked
//! before (`Cannot start a runtime from within a runtime`, from the blocking client).
//! (Needs the `tokio`, `http` and `testing` features.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use migrate_runtime::config::ConnectionSettings;
use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_runtime::{Error, Migration, Migrator};

static MIGRATIONS: &[Migration] = migrate_macros::embed_migrations!("../migrations");

fn settings(database: &TestDatabase<'_>) -> ConnectionSettings {
    ConnectionSettings::from_url(&database.url()).unwrap()
}

/// Applies, checks the status, plans, reads the history and drops the database, all from the
/// async test's own thread.
async fn migrate_from_async_code() {
    let database = TestServer::shared().create_database().unwrap();
    let report = migrate_runtime::tokio::run(Migrator::new(MIGRATIONS), settings(&database))
        .await
        .unwrap();
    assert_eq!(
        report.applied.len(),
        MIGRATIONS.len() - 1,
        "all but the production-only one"
    );

    let status = migrate_runtime::tokio::status(Migrator::new(MIGRATIONS), settings(&database))
        .await
        .unwrap();
    assert_eq!(status.entries.len(), MIGRATIONS.len());
    let plan = migrate_runtime::tokio::plan(Migrator::new(MIGRATIONS), settings(&database))
        .await
        .unwrap();
    assert!(plan.pending.is_empty() && plan.refusal.is_none());

    let migrator = Migrator::new(MIGRATIONS);
    let actions = migrate_runtime::tokio::with_client(settings(&database), move |client| {
        migrator.history(client)
    })
    .await
    .unwrap();
    assert_eq!(actions.len(), report.applied.len());
    drop(database); // dropped inside the runtime: no panic
}

#[tokio::test(flavor = "current_thread")]
async fn migrations_run_from_a_current_thread_runtime() {
    migrate_from_async_code().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_from_a_multi_thread_runtime() {
    migrate_from_async_code().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_migrated_template_database_in_an_async_test() {
    let server = TestServer::shared();
    let database = server
        .migrated_database(&Migrator::new(MIGRATIONS))
        .unwrap();
    let status = migrate_runtime::tokio::status(Migrator::new(MIGRATIONS), settings(&database))
        .await
        .unwrap();
    assert!(status
        .entries
        .iter()
        .any(|entry| entry.state == migrate_runtime::State::Applied));
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_failure_is_an_error_not_a_panic() {
    // Nothing listens on port 1.
    let mut config = postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(1)
        .user("postgres")
        .dbname("app");
    let error = migrate_runtime::tokio::run(
        Migrator::new(MIGRATIONS),
        ConnectionSettings::from_config(config),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Error::Connect(_)), "{error:?}");
    assert!(
        error.render().to_string().contains("127.0.0.1"),
        "{}",
        error.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_an_error_not_a_panic_in_the_caller() {
    let database = TestServer::shared().create_database().unwrap();
    let error =
        migrate_runtime::tokio::with_client(settings(&database), |_client| -> Result<(), Error> {
            panic!("a bug in the job")
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::TaskFailed { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the migration task did not finish: the blocking task running it panicked"
    );
}

/// The example's binary, built when `cargo test` did not build it (a single `--test` run).
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    if !path.exists() {
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "build",
                "-p",
                "migrate-runtime",
                "--features",
                "tokio,http",
                "--example",
                name,
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and the body.
fn request(address: &str, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "{head}Host: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_axum_example_migrates_at_start_up_and_serves_the_admin_endpoint() {
    let database = TestServer::shared().create_database().unwrap();
    let token = "a-token-long-enough-to-be-accepted-by-serve-0123456789";
    let child = Command::new(example("axum_startup"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database.url())
        .env("INTERNAL_ADMIN_TOKEN", token)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first,
        format!("migrations: {} applied at start-up", MIGRATIONS.len() - 1)
    );
    let listening = lines.next().unwrap().unwrap();
    let address = listening
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{listening}"))
        .to_owned();

    assert_eq!(
        request(&address, "GET /health HTTP/1.1\r\n"),
        (200, "ok".to_owned())
    );
    let (status, body) = request(
        &address,
        &format!("GET /admin/migrations HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"),
    );
    assert_eq!(status, 200, "{body}");
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    let applied = document["migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("{document}"))
        .iter()
        .filter(|entry| entry["state"] == "applied")
        .count();
    assert_eq!(applied, MIGRATIONS.len() - 1);
    let (status, _) = request(&address, "GET /admin/migrations HTTP/1.1\r\n");
    assert_eq!(status, 401);
}

/// The `log` records of this test binary, for the start-up line below.
struct Recorder(std::sync::Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("migrate_runtime") {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

static RECORDS: Recorder = Recorder(std::sync::Mutex::new(Vec::new()));

#[tokio::test(flavor = "current_thread")]
async fn a_start_up_with_nothing_pending_logs_one_line_at_info() {
    log::set_logger(&RECORDS).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let database = TestServer::shared().create_database().unwrap();
    migrate_runtime::tokio::run(Migrator::new(MIGRATIONS), settings(&database))
        .await
        .unwrap();
    RECORDS.0.lock().unwrap().clear();
    migrate_runtime::tokio::run(Migrator::new(MIGRATIONS), settings(&database))
        .await
        .unwrap();
    // Other tests of this binary may log meanwhile; none of them runs twice on one database.
    let records: Vec<String> = RECORDS
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|line| !line.starts_with("INFO applied migration "))
        .cloned()
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let line = &records[0];
    let expected = format!(
        "INFO migrations up to date: {} checked against public.schema_migrations, nothing to apply (",
        MIGRATIONS.len()
    );
    assert!(
        line.starts_with(&expected) && line.ends_with(" ms)"),
        "{line}"
    );
}
