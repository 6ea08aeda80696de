//! Sixteen `migrate up` processes started at once on one fresh database, straight to the
//! server and through PgBouncer in transaction pooling mode: every process exits 0 and each
//! of the 200 migrations (every tenth outside a transaction) is applied exactly once.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;
use migrate_test_support::process::{spawn, text};
use support::{check_invariants, migrate, COUNT};

const PROCESSES: usize = 16;

/// Starts every process before waiting for any; returns how many migrations each applied.
fn sixteen_at_once(dir: &Path, url: &str, extra: &[&str]) -> usize {
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn(migrate(dir, url).args(extra).arg("up")))
        .collect();
    let mut applied = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a starter failed:\n{}",
            text(&output)
        );
        applied += String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.starts_with("applied "))
            .count();
    }
    applied
}

#[test]
fn sixteen_processes_at_once_apply_each_migration_once() {
    let dir = tempfile::tempdir().unwrap();
    support::write_fault_set(dir.path());
    let database = TestServer::shared().create_database().unwrap();

    let applied = sixteen_at_once(dir.path(), &database.url(), &[]);

    assert_eq!(applied as i64, COUNT, "each migration reported once in all");
    let observed = check_invariants(&mut database.client().unwrap());
    assert_eq!(observed.applied.len() as i64, COUNT);
}

#[test]
fn sixteen_processes_through_pgbouncer_in_transaction_mode_apply_each_migration_once() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    support::write_fault_set(dir.path());
    let database = server.create_database().unwrap();
    let bouncer = PgBouncer::start(server.port());
    let url = bouncer.url(database.name());

    let applied = sixteen_at_once(dir.path(), &url, &["--lock-scope", "transaction"]);

    assert_eq!(applied as i64, COUNT, "each migration reported once in all");
    let observed = check_invariants(&mut database.client().unwrap());
    assert_eq!(observed.applied.len() as i64, COUNT);
}

#[test]
fn through_pgbouncer_the_session_lock_is_refused_and_nothing_is_claimed_twice() {
    let server = TestServer::shared();
    let dir = tempfile::tempdir().unwrap();
    support::write_fault_set(dir.path());
    let database = server.create_database().unwrap();
    let bouncer = PgBouncer::start(server.port());
    let url = bouncer.url(database.name());

    // The default lock scope, `session`, through a transaction pooler: a process either
    // applies migrations on the server session that holds its lock, or refuses, or (when the
    // lock stayed on a pooled server session whose owner was refused) times out waiting.
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn(migrate(dir.path(), &url).args(["--lock-wait", "5", "up"])))
        .collect();
    let mut refused = 0;
    let mut reported: Vec<String> = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let all = text(&output);
        reported.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|line| line.starts_with("applied "))
                .map(|line| line.split_whitespace().nth(1).unwrap().to_owned()),
        );
        if output.status.success() {
            continue;
        }
        if output.status.code() == Some(1) {
            assert!(
                all.contains("error: waited 5.0 s for the migration lock on public.schema_migrations, held by pid "),
                "{all}"
            );
            continue;
        }
        assert_eq!(output.status.code(), Some(2), "{all}");
        assert!(
            all.contains("error: the migration lock is session-level, but a transaction pooler moves this run between server sessions"),
            "{all}"
        );
        assert!(
            all.contains("help: behind a transaction pooler, use lock scope `transaction`: `migrate --lock-scope transaction up`"),
            "{all}"
        );
        refused += 1;
    }
    assert!(refused > 0, "no process noticed the pooler");
    let mut unique = reported.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        reported.len(),
        "a migration reported applied twice: {reported:?}"
    );
    let mut client = database.client().unwrap();
    let failed: i64 = client
        .query_one(
            "SELECT count(*) FROM schema_migrations_history WHERE status = 'failed'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        failed, 0,
        "a failure was recorded against a migration that did not fail"
    );

    // What the help says: the pooler closes its server connections (and with them a lock left
    // on one), and the transaction lock scope goes through it.
    drop(bouncer);
    let bouncer = PgBouncer::start(server.port());
    let url = bouncer.url(database.name());
    let output = migrate(dir.path(), &url)
        .args(["--lock-scope", "transaction", "up"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let observed = check_invariants(&mut client);
    assert_eq!(observed.applied.len() as i64, COUNT);
}

/// PgBouncer on loopback in transaction pooling mode, with fewer server connections than
/// clients, so that consecutive transactions of one client run on different server sessions.
struct PgBouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    /// The URL of `database` through this pooler.
    fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn start(server_port: u16) -> PgBouncer {
        let program = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .expect("pgbouncer is needed: apt-get install pgbouncer (.ci/run installs it)");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            &config,
            format!(
                "[databases]\n* = host=127.0.0.1 port={server_port}\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = transaction\n\
                 default_pool_size = 4\nmax_client_conn = 100\n\
                 ignore_startup_parameters = extra_float_digits,options\n",
                dir.path().join("users.txt").display()
            ),
        )
        .unwrap();
        let mut command = Command::new(program);
        if is_root() {
            // PgBouncer refuses to run as root; its files must be readable by the user it becomes.
            Command::new("chmod")
                .args(["-R", "a+rX"])
                .arg(dir.path())
                .status()
                .unwrap();
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PgBouncer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}
