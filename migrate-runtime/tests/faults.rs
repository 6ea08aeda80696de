//! Server faults in the middle of a run: the server crashing (`pg_ctl stop -m immediate`) and
//! the migrating backend killed (`pg_terminate_backend`). Each shows the error the user sees,
//! checks the history against the catalog, and finishes the run after recovery.
#![allow(clippy::print_stderr)] // Each test shows the message a user sees (--nocapture).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_test_support::process::{spawn, text};
use postgres::Client;
use support::{
    assert_refuses_unfinished, check_invariants, migrate, recover, rows, schema_fingerprint, COUNT,
};

/// Polls until `sql` returns a true first column.
fn wait_until(client: &mut Client, sql: &str) {
    let started = Instant::now();
    while rows(client, sql).first().map(|row| row[0].as_str()) != Some("t") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out: {sql}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The versions a run printed as applied.
fn reported_applied(stdout: &[u8]) -> Vec<i64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("applied")).then(|| words.next()?.parse().ok())?
        })
        .collect()
}

/// True once `n` of the set's tables exist (from the catalog, which exists from the start).
fn tables_at_least(n: i64) -> String {
    format!(
        "SELECT count(*) >= {n} FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname ~ '^t[0-9]+$'"
    )
}

#[test]
fn server_crash_in_the_middle_of_a_run_loses_nothing_reported() {
    let server = TestServer::start_durable().unwrap();
    let dir = tempfile::tempdir().unwrap();
    support::write_fault_set(dir.path());
    let clean = server.create_database().unwrap();
    let output = migrate(dir.path(), &clean.url())
        .arg("up")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let expected = schema_fingerprint(&mut clean.client().unwrap());

    let database = server.create_database().unwrap();
    let child = spawn(migrate(dir.path(), &database.url()).arg("up"));
    wait_until(&mut database.client().unwrap(), &tables_at_least(COUNT / 3));
    server.crash().unwrap();
    let output = child.wait_with_output().unwrap();
    let shown = text(&output);
    eprintln!("the run, when the server crashed:\n{shown}");
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("error: the connection to the database was lost while "),
        "{shown}"
    );
    let reported = reported_applied(&output.stdout);

    server.restart().unwrap();
    let mut client = database.client().unwrap();
    let observed = check_invariants(&mut client);
    // Never lied to: everything the run said it applied survived the crash.
    assert!(
        reported.iter().all(|v| observed.applied.contains(v)),
        "reported {reported:?}, survived {:?}",
        observed.applied
    );
    finish(&mut client, dir.path(), &database, observed.unfinished);
    assert_eq!(schema_fingerprint(&mut client), expected);
}

/// Migration 2 (transactional) and migration 3 (no-transaction) each pause for as long as
/// the `knob` table says, so a test can kill the backend in the middle and rerun without it.
fn pausing_set(dir: &Path) {
    let files = [
        ("001_t.sql", "CREATE TABLE t (id int PRIMARY KEY, v text);\n"),
        (
            "002_pause.sql",
            "CREATE TABLE u (id int);\nSELECT pg_sleep((SELECT seconds FROM knob));\nINSERT INTO t VALUES (1, 'x');\n",
        ),
        (
            "003_index.sql",
            "-- migrate:no-transaction\n\
             CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v ON t (v);\n\
             SELECT pg_sleep((SELECT seconds FROM knob));\n\
             CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v_id ON t (v, id);\n",
        ),
    ];
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

/// Terminates the backend that is sleeping inside a migration; returns what the run showed.
fn terminate_while_paused(
    database: &TestDatabase<'_>,
    dir: &Path,
    args: &[&str],
) -> (Option<i32>, String) {
    let mut watcher = database.client().unwrap();
    let child = spawn(migrate(dir, &database.url()).args(args));
    // By wait event: the query text of a batch is longer than what pg_stat_activity keeps.
    let sleeping = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                    AND wait_event = 'PgSleep'";
    wait_until(
        &mut watcher,
        &format!("SELECT EXISTS ({sleeping}) AND EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory')"),
    );
    let terminated = rows(
        &mut watcher,
        &format!("SELECT pg_terminate_backend(pid) FROM ({sleeping}) s"),
    );
    assert_eq!(terminated, [["t"]]);
    let output = child.wait_with_output().unwrap();
    eprintln!(
        "the run, when its backend was terminated:\n{}",
        text(&output)
    );
    (output.status.code(), text(&output))
}

#[test]
fn a_backend_terminated_inside_a_transactional_migration_leaves_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    pausing_set(dir.path());
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute("CREATE TABLE knob (seconds float8); INSERT INTO knob VALUES (60)")
        .unwrap();

    let (code, shown) = terminate_while_paused(&database, dir.path(), &["up"]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("error: the connection to the database was lost while applying migrations 1 (t) to 2 (pause): ")
            && shown.contains("= help: each migration commits together with its history row or not at all"),
        "the error names the migrations and what state they can be in:\n{shown}"
    );
    // The server's own reason arrives unless the socket closes before the driver reads it.
    assert!(
        shown.contains("(SQLSTATE 57P01)") || shown.contains("connection closed"),
        "{shown}"
    );
    let versions = rows(&mut client, "SELECT version, status FROM schema_migrations");
    assert_eq!(versions, [["1", "applied"]]);
    assert_eq!(
        rows(
            &mut client,
            "SELECT to_regclass('u') IS NULL, count(*) FROM t"
        ),
        [["t", "0"]],
        "nothing of migration 2 stayed"
    );

    client.batch_execute("UPDATE knob SET seconds = 0").unwrap();
    let rerun = migrate(dir.path(), &database.url())
        .arg("up")
        .output()
        .unwrap();
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(
        rows(
            &mut client,
            "SELECT count(*) FROM schema_migrations WHERE status = 'applied'"
        ),
        [["3"]]
    );
}

#[test]
fn a_backend_terminated_inside_a_grouped_run_leaves_nothing_of_the_group() {
    let dir = tempfile::tempdir().unwrap();
    pausing_set(dir.path());
    // Grouped mode takes only transactional migrations.
    std::fs::remove_file(dir.path().join("003_index.sql")).unwrap();
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute("CREATE TABLE knob (seconds float8); INSERT INTO knob VALUES (60)")
        .unwrap();

    let (code, shown) = terminate_while_paused(&database, dir.path(), &["up", "--grouped"]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("error: the connection to the database was lost while applying migrations 1 (t) to 2 (pause) in one transaction: "),
        "the error names the group:\n{shown}"
    );
    assert_eq!(
        rows(
            &mut client,
            "SELECT to_regclass('t') IS NULL, to_regclass('u') IS NULL, \
             (SELECT count(*) FROM schema_migrations)"
        ),
        [["t", "t", "0"]],
        "the server rolled the whole group back"
    );

    client.batch_execute("UPDATE knob SET seconds = 0").unwrap();
    let rerun = migrate(dir.path(), &database.url())
        .args(["up", "--grouped"])
        .output()
        .unwrap();
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(
        rows(&mut client, "SELECT count(*) FROM schema_migrations"),
        [["2"]]
    );
}

#[test]
fn a_backend_terminated_inside_a_no_transaction_migration_is_refused_then_recovered() {
    let dir = tempfile::tempdir().unwrap();
    pausing_set(dir.path());
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute("CREATE TABLE knob (seconds float8); INSERT INTO knob VALUES (0)")
        .unwrap();
    // Migrations 1 and 2 quickly; then pause inside 3.
    let first = migrate(dir.path(), &database.url())
        .args(["up", "--to", "2"])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", text(&first));
    client
        .batch_execute("UPDATE knob SET seconds = 60")
        .unwrap();

    let (code, shown) = terminate_while_paused(&database, dir.path(), &["up"]);
    assert_eq!(code, Some(1), "{shown}");
    // The server's own reason (57P01) arrives unless the socket closes first.
    assert!(
        shown.contains("error: the connection to the database was lost while running migration 3 (index), statement 2 of 3 at ")
            && shown.contains("003_index.sql:3: ")
            && shown.contains("it was running outside a transaction, so some of its statements may have run"),
        "{shown}"
    );
    // The connection is gone, so the row could not be marked failed: it stays `running`.
    assert_eq!(
        rows(
            &mut client,
            "SELECT status FROM schema_migrations WHERE version = 3"
        ),
        [["running"]]
    );
    assert_eq!(
        rows(
            &mut client,
            "SELECT to_regclass('t_v') IS NOT NULL, to_regclass('t_v_id') IS NULL"
        ),
        [["t", "t"]],
        "the first statement ran, the second did not"
    );

    client.batch_execute("UPDATE knob SET seconds = 0").unwrap();
    let refused = migrate(dir.path(), &database.url())
        .arg("up")
        .output()
        .unwrap();
    assert_refuses_unfinished(&refused, 3);
    assert!(
        text(&refused).contains("was interrupted while running outside a transaction"),
        "{}",
        text(&refused)
    );
    recover(&mut client, dir.path(), &database.url(), 3);
    let rerun = migrate(dir.path(), &database.url())
        .arg("up")
        .output()
        .unwrap();
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(
        rows(
            &mut client,
            "SELECT count(*) FROM schema_migrations WHERE status = 'applied'"
        ),
        [["3"]]
    );
}

/// After a fault: the documented recovery when a no-transaction migration was cut off, then
/// a run that completes.
fn finish(
    client: &mut Client,
    dir: &Path,
    database: &TestDatabase<'_>,
    unfinished: Option<(i64, String)>,
) {
    if let Some((version, _)) = unfinished {
        let refused = migrate(dir, &database.url()).arg("up").output().unwrap();
        assert_refuses_unfinished(&refused, version);
        recover(client, dir, &database.url(), version);
    }
    let rerun = migrate(dir, &database.url()).arg("up").output().unwrap();
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(check_invariants(client).applied.len() as i64, COUNT);
}
