//! No hangs, no orphans: a `migrate up` stopped by SIGINT or SIGTERM while its migration waits
//! for a lock cancels the statement and leaves nothing behind; a run cut off by a network
//! black hole errors out, and the server ends its session (releasing the migration lock),
//! within the bound `ConnectionSettings::dead_peer_bound` documents.
//!
//! The black hole is real: in a network namespace of its own, every IPv4 packet arriving on
//! the loopback interface is redirected to an `ifb` device that is down, which drops it. Both
//! ends send successfully and hear nothing, keepalive probes included, as across a network
//! that stopped delivering. (Dropping on the way out instead, with a qdisc, would not do: the
//! kernel takes a local drop for congestion and retries its probes forever without counting
//! them. A proxy in user space cannot do it either: the kernel under the proxy answers the
//! keepalive probes of both ends even when the proxy stops forwarding.) The test re-runs
//! itself under `unshare --net`, which needs root (or CAP_SYS_ADMIN) and the `ip` and `tc`
//! commands (iproute2).
#![allow(clippy::print_stderr)] // Each test shows the message a user sees (--nocapture).

mod support;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use migrate_runtime::config::ConnectionSettings;
use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_test_support::process::{spawn, text, Run};
use postgres::Client;
use support::{migrate, rows};

/// The migration that waits: it needs an ACCESS EXCLUSIVE lock on `t`.
const MIGRATION: &str = "ALTER TABLE t ADD COLUMN c int;\n";

/// A database with table `t` and a migrations directory holding [`MIGRATION`].
fn setup(server: &TestServer) -> (TestDatabase<'_>, tempfile::TempDir) {
    let database = server.create_database().unwrap();
    database
        .client()
        .unwrap()
        .batch_execute("CREATE TABLE t (id int)")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001_add_c.sql"), MIGRATION).unwrap();
    (database, dir)
}

/// `migrate` on `dir` and `url`, its migration left waiting for the lock as long as it takes
/// (`MIGRATE_LOCK_TIMEOUT=off`: no per-attempt lock timeout and retries, where the binary has
/// them), so that the signal or the black hole finds it queued.
fn migrate_waiting(dir: &Path, url: &str) -> Command {
    let mut command = migrate(dir, url);
    command.env("MIGRATE_LOCK_TIMEOUT", "off");
    command
}

/// Another session reading `t` in an open transaction: the ALTER queues behind it.
fn blocker(database: &TestDatabase<'_>) -> Client {
    let mut blocker = database.client().unwrap();
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM t")
        .unwrap();
    blocker
}

/// Waits until the ALTER is queued for the lock, and returns its backend's pid.
fn waiting_backend(admin: &mut Client) -> String {
    let started = Instant::now();
    loop {
        let found = rows(
            admin,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%ADD COLUMN c%'",
        );
        if let Some(row) = found.first() {
            return row[0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the migration never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `limit` for `child` to exit; how long it took and what it showed.
fn wait_for_exit(mut child: Child, limit: Duration) -> (Duration, Output) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; what it showed:\n{}",
                text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (started.elapsed(), child.wait_with_output().unwrap())
}

/// Waits up to `limit` until backend `pid` is gone; how long it took.
fn wait_until_gone(admin: &mut Client, pid: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}");
    while rows(admin, &sql)[0][0] != "0" {
        let state = rows(
            admin,
            &format!(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE pid = {pid}"
            ),
        );
        assert!(
            started.elapsed() < limit,
            "backend {pid} still there after {limit:?}: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Nobody holds an advisory lock (the migration lock) in the database.
fn assert_no_advisory_lock(admin: &mut Client) {
    let held = rows(
        admin,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    assert!(held.is_empty(), "advisory lock still held by {held:?}");
}

/// After the blocker ends: column `c` does not exist and the history records nothing applied.
fn assert_nothing_applied(admin: &mut Client) {
    // Had the ALTER stayed queued, it would run now that the lock is free.
    std::thread::sleep(Duration::from_millis(300));
    let columns = rows(
        admin,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'c'",
    );
    assert_eq!(columns[0][0], "0", "column c was added");
    let history = rows(
        admin,
        "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 \
         ELSE (SELECT count(*) FROM schema_migrations WHERE status = 'applied') END",
    );
    assert_eq!(history[0][0], "0", "the history says applied");
}

/// A run to the end now succeeds: the database was left consistent and unlocked.
fn assert_next_run_applies(dir: &Path, url: &str, admin: &mut Client) {
    let output = migrate(dir, url).arg("up").output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let columns = rows(
        admin,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'c'",
    );
    assert_eq!(columns[0][0], "1");
}

/// `json`: with `--json`, the error document on standard output instead of the text.
fn a_signal_cancels_a_migration_waiting_for_a_lock(
    signal: &str,
    name: &str,
    code: i32,
    json: bool,
) {
    let server = TestServer::shared();
    let (database, dir) = setup(server);
    let mut admin = database.client().unwrap();
    let mut blocker = blocker(&database);
    let mut command = migrate_waiting(dir.path(), &database.url());
    if json {
        command.arg("--json");
    }
    let child = spawn(command.arg("up"));
    let pid = waiting_backend(&mut admin);

    let sent = Instant::now();
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (took, output) = wait_for_exit(child, Duration::from_secs(20));
    let shown = text(&output);
    eprintln!("{name} after {took:?}:\n{shown}");
    assert_eq!(output.status.code(), Some(code), "{shown}");
    // The cancel ended it, not the 5 s grace period.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        shown.contains(&format!(
            "{name}: cancelling the running statement (again to exit at once)"
        )),
        "{shown}"
    );
    if json {
        let error = &Run::of(&output).json()["error"];
        assert_eq!(error["kind"], "interrupted", "{shown}");
        assert_eq!(error["signal"], name, "{shown}");
        assert_eq!(error["cause_kind"], "migration_failed", "{shown}");
        assert_eq!(error["sqlstate"], "57014", "{shown}");
        assert_eq!(error["version"], 1, "{shown}");
    } else {
        assert!(
            shown.contains(&format!(
                "error: interrupted by {name}: the running statement was cancelled"
            )),
            "{shown}"
        );
        assert!(
            shown.contains("canceling statement due to user request (SQLSTATE 57014)"),
            "{shown}"
        );
    }
    let gone = wait_until_gone(&mut admin, &pid, Duration::from_secs(5));
    eprintln!("backend {pid} gone {:?} after the signal", sent.elapsed());
    assert!(gone < Duration::from_secs(5));
    assert_no_advisory_lock(&mut admin);

    blocker.batch_execute("COMMIT").unwrap();
    assert_nothing_applied(&mut admin);
    assert_next_run_applies(dir.path(), &database.url(), &mut admin);
}

#[test]
fn sigint_cancels_a_migration_waiting_for_a_lock_and_exits_130() {
    a_signal_cancels_a_migration_waiting_for_a_lock("-INT", "SIGINT", 130, false);
}

#[test]
fn sigterm_cancels_a_migration_waiting_for_a_lock_and_exits_143_json() {
    a_signal_cancels_a_migration_waiting_for_a_lock("-TERM", "SIGTERM", 143, true);
}

/// Set in the copy of this test that runs inside its own network namespace.
const IN_NAMESPACE: &str = "MIGRATE_TEST_IN_NETWORK_NAMESPACE";

/// Runs `program` (found on PATH, else in /usr/sbin or /sbin, where iproute2 puts `ip` and
/// `tc`) with `args`; panics with what it said if it fails.
fn run(program: &str, args: &[&str]) {
    let path = ["/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
        .filter(|_| Command::new(program).arg("-V").output().is_err())
        .map_or_else(|| program.into(), std::path::PathBuf::into_os_string);
    let output = Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        text(&output)
    );
}

#[test]
fn a_black_holed_run_errors_out_and_the_server_releases_its_lock_within_the_bound() {
    const NAME: &str =
        "a_black_holed_run_errors_out_and_the_server_releases_its_lock_within_the_bound";
    if std::env::var_os(IN_NAMESPACE).is_none() {
        let output = Command::new("unshare")
            .arg("--net")
            .arg("--")
            .arg(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(IN_NAMESPACE, "1")
            .output()
            .expect("unshare (util-linux) runs this test in a network namespace of its own");
        let shown = text(&output);
        eprintln!("{shown}");
        assert!(
            output.status.success(),
            "the test in its network namespace failed (it needs root or CAP_SYS_ADMIN, `ip` and `tc`)"
        );
        assert!(shown.contains("1 passed"), "the test did not run");
        return;
    }
    run("ip", &["link", "set", "lo", "up"]);
    let server = TestServer::start().unwrap();
    let (database, dir) = setup(&server);
    // The direct connections below use the server's Unix socket, which the black hole spares.
    let mut admin = database.client().unwrap();
    let mut blocker = blocker(&database);
    // Short probing for the test: idle 1 s, every 1 s, 2 probes, 3 s unacknowledged.
    let url = format!(
        "{}?keepalives_idle=1&keepalives_interval=1&keepalives_count=2&tcp_user_timeout=3000",
        database.url()
    );
    let bound = ConnectionSettings::resolve(Some(&url), |_| None)
        .unwrap()
        .unwrap()
        .dead_peer_bound()
        .unwrap();
    assert_eq!(bound, Duration::from_secs(4));
    let child = spawn(migrate_waiting(dir.path(), &url).arg("up"));
    let pid = waiting_backend(&mut admin);

    // The network stops delivering: no reset, no close, nothing.
    run("ip", &["link", "add", "hole", "type", "ifb"]);
    run("tc", &["qdisc", "add", "dev", "lo", "clsact"]);
    run(
        "tc",
        &[
            "filter", "add", "dev", "lo", "ingress", "protocol", "ip", "u32", "match", "u32", "0",
            "0", "action", "mirred", "egress", "redirect", "dev", "hole",
        ],
    );
    let cut = Instant::now();
    let slack = Duration::from_secs(3);
    let (took, output) = wait_for_exit(child, bound + slack + Duration::from_secs(10));
    let shown = text(&output);
    eprintln!("the run, {took:?} after the black hole (bound {bound:?}):\n{shown}");
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("error: the connection to the database was lost while "),
        "{shown}"
    );
    assert!(took <= bound + slack, "the client took {took:?}");
    let remaining = (bound + slack + Duration::from_secs(10)).saturating_sub(cut.elapsed());
    wait_until_gone(&mut admin, &pid, remaining);
    let released = cut.elapsed();
    eprintln!("backend {pid} ended, its lock released, {released:?} after the black hole");
    assert!(released <= bound + slack, "the server took {released:?}");
    assert_no_advisory_lock(&mut admin);

    run("tc", &["qdisc", "del", "dev", "lo", "clsact"]);
    blocker.batch_execute("COMMIT").unwrap();
    assert_nothing_applied(&mut admin);
    assert_next_run_applies(dir.path(), &url, &mut admin);
}
