//! Many starters at once, a lock held by someone else, and secrets in connection strings.

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, LockScope, Migration, Migrator};
use migrate_test_support::files::directory;
use migrate_test_support::process::spawn;
use migrate_tests::{migrations, scalar};
use postgres::{Client, NoTls};

/// Twelve migrations, the first slow enough that every starter arrives while it runs.
fn racing_set_files() -> Vec<(String, String)> {
    let mut files = vec![(
        "001_slow.sql".to_owned(),
        "SELECT pg_sleep(0.3);\nCREATE TABLE t1 (id int);\n".to_owned(),
    )];
    for version in 2..=12 {
        files.push((
            format!("{version:03}_t{version}.sql"),
            format!(
                "CREATE TABLE t{version} (id int);\nINSERT INTO t{version} VALUES ({version});\n"
            ),
        ));
    }
    files
}

fn racing_set() -> Vec<Migration> {
    let files = racing_set_files();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    migrations(&borrowed)
}

/// Every migration recorded once, applied once, and its rows inserted once.
fn assert_applied_exactly_once(client: &mut Client, total: usize) {
    assert_eq!(
        scalar(client, "SELECT count(*) FROM schema_migrations") as usize,
        total
    );
    let successes = scalar(
        client,
        "SELECT count(*) FROM schema_migrations_history WHERE action = 'apply' AND status = 'success'",
    );
    assert_eq!(successes as usize, total);
    for version in 2..=total {
        let rows = scalar(client, &format!("SELECT count(*) FROM t{version}"));
        assert_eq!(rows, 1, "t{version}");
    }
}

#[test]
fn eight_threads_at_once_apply_each_migration_once() {
    eight_threads(LockScope::Session);
}

/// The pooler-safe mode: no session lock, every transaction locks and re-checks.
#[test]
fn eight_threads_with_transaction_scoped_locks_apply_each_migration_once() {
    eight_threads(LockScope::Transaction);
}

fn eight_threads(scope: LockScope) {
    let set = Arc::new(racing_set());
    let database = TestServer::shared().create_database().unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (set, barrier, config) =
                (Arc::clone(&set), Arc::clone(&barrier), database.config());
            thread::spawn(move || {
                let mut client = config.connect(NoTls).unwrap();
                barrier.wait();
                Migrator::new(&set)
                    .lock_scope(scope)
                    .run(&mut client)
                    .map(|r| r.applied.len())
            })
        })
        .collect();
    let applied: Vec<usize> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("every starter succeeds"))
        .collect();
    assert_eq!(applied.iter().sum::<usize>(), set.len(), "{applied:?}");
    assert_applied_exactly_once(&mut database.client().unwrap(), set.len());
}

#[test]
fn eight_processes_at_once_apply_each_migration_once() {
    let files = racing_set_files();
    let dir = directory(&files);
    let database = TestServer::shared().create_database().unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn(
                Command::new(env!("CARGO_BIN_EXE_apply_migrations"))
                    .arg(dir.path())
                    .env("DATABASE_URL", database.url()),
            )
        })
        .collect();
    let mut applied = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "a starter failed: {stderr}");
        applied += String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<usize>()
            .unwrap();
    }
    assert_eq!(applied, files.len());
    assert_applied_exactly_once(&mut database.client().unwrap(), files.len());
}

#[test]
fn lock_wait_is_bounded_and_names_the_holder() {
    let slow = migrations(&[(
        "001_slow.sql",
        "SELECT pg_sleep(3);\nCREATE TABLE slow (id int);\n",
    )]);
    let database = TestServer::shared().create_database().unwrap();

    let mut holder_config = database.config();
    holder_config.application_name("holder-app");
    let mut holder = holder_config.connect(NoTls).unwrap();
    let holder_pid = scalar(&mut holder, "SELECT pg_backend_pid()");
    let holding = {
        let slow = slow.clone();
        thread::spawn(move || {
            Migrator::new(&slow)
                .run(&mut holder)
                .map(|r| r.applied.len())
        })
    };
    // Let the holder take the lock.
    thread::sleep(Duration::from_millis(500));

    let mut waiter = database.client().unwrap();
    let started = Instant::now();
    let error = Migrator::new(&slow)
        .lock_wait(Duration::from_millis(300))
        .run(&mut waiter)
        .unwrap_err();
    let waited = started.elapsed();

    assert!(matches!(error, Error::LockTimeout { .. }), "{error}");
    let message = error.render().to_string();
    assert!(
        message.contains(&format!(
            "held by pid {holder_pid} (application_name `holder-app`)"
        )),
        "{message}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(
        holding.join().unwrap().unwrap(),
        1,
        "the holder finishes normally"
    );
    // Released: the waiter now finds nothing to do, quickly.
    let report = Migrator::new(&slow)
        .lock_wait(Duration::from_millis(300))
        .run(&mut waiter)
        .unwrap();
    assert!(report.applied.is_empty());
}

#[test]
fn the_lock_is_released_when_a_migration_fails() {
    let failing = migrations(&[("001_bad.sql", "SELECT * FROM nowhere;\n")]);
    let database = TestServer::shared().create_database().unwrap();
    let mut first = database.client().unwrap();
    let mut second = database.client().unwrap();
    let error = Migrator::new(&failing).run(&mut first).unwrap_err();
    assert!(matches!(error, Error::MigrationFailed(_)));
    // The first session stays open; if it still held the lock this would time out.
    let error = Migrator::new(&failing)
        .lock_wait(Duration::from_millis(200))
        .run(&mut second)
        .unwrap_err();
    assert!(matches!(error, Error::MigrationFailed(_)), "{error}");
    let held = scalar(
        &mut first,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    assert_eq!(held, 0);
}

#[test]
fn passwords_in_the_database_url_never_appear_in_errors() {
    const SECRET: &str = "Sup3r-S3cret-pw";
    let set = migrations(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("002_b.sql", "SELECT * FROM missing;\n"),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let url = database
        .url()
        .replace("postgres@", &format!("postgres:{SECRET}@"));
    let mut client = Client::connect(&url, NoTls).unwrap();
    let mut errors: Vec<Error> = Vec::new();

    errors.push(Migrator::new(&set).run(&mut client).unwrap_err());
    client
        .batch_execute("UPDATE schema_migrations SET checksum = 'sha256:x'")
        .unwrap();
    errors.push(Migrator::new(&set[..1]).run(&mut client).unwrap_err());
    errors.push(
        Migrator::new(&set)
            .history_table("", "t")
            .run(&mut client)
            .unwrap_err(),
    );
    // A connection lost under the runner.
    let pid = scalar(&mut client, "SELECT pg_backend_pid()");
    database
        .client()
        .unwrap()
        .batch_execute(&format!("SELECT pg_terminate_backend({pid})"))
        .unwrap();
    errors.push(Migrator::new(&set).run(&mut client).unwrap_err());

    assert!(
        matches!(errors.last(), Some(Error::Database { .. })),
        "{:?}",
        errors.last()
    );
    for error in &errors {
        let shown = format!("{error}\n{error:?}\n{error:#?}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
