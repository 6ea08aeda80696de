//! The machine's shared test server: one PostgreSQL cluster per user, in the system's temporary
//! directory, started by whichever test process needs it first and reused by every later test
//! process and `cargo test` run; it stops itself after a while without use.
//!
//! No lock file: PostgreSQL's own `postmaster.pid` decides which of several processes starting
//! it at once wins (the others' `pg_ctl start` fails and they find the winner's), and `initdb`
//! runs in a private directory renamed into place, so a half-made cluster is never seen.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::cluster::{self, command, run, INITDB_FLAGS};
use super::{find_binaries, free_port, io, unprivileged_user_if_root, TestServerError};

/// Minutes without a test database handed out or dropped after which the shared server stops
/// itself (default 30). Its data stays, so templates survive the next start.
pub(crate) const IDLE_VARIABLE: &str = "MIGRATE_TEST_SERVER_IDLE_MINUTES";
const DEFAULT_IDLE_MINUTES: u32 = 30;
/// How long a process waits for another to finish starting the server.
const START_WAIT: Duration = Duration::from_secs(60);

/// The shared server's directory: `$TMPDIR/migrate-test-server-<uid>`.
fn directory() -> PathBuf {
    std::env::temp_dir().join(format!(
        "migrate-test-server-{}",
        cluster::effective_uid().unwrap_or(0)
    ))
}

/// The shared server's `postgresql://` URL (its `postgres` database), starting it if no
/// process has, or if it stopped itself.
pub(crate) fn ensure() -> Result<String, TestServerError> {
    let dir = directory();
    let run_as = unprivileged_user_if_root();
    prepare_directory(&dir, run_as)?;
    let deadline = Instant::now() + START_WAIT;
    let mut last_error = None;
    while Instant::now() < deadline {
        if let Some(port) = running_port(&dir) {
            touch();
            return Ok(format!("postgresql://postgres@127.0.0.1:{port}/postgres"));
        }
        let bin = find_binaries().ok_or(TestServerError::NotInstalled)?;
        let data = dir.join("data");
        let attempt = if data.join("PG_VERSION").is_file() {
            start(&bin, &dir, run_as)
        } else {
            initdb(&bin, &dir, run_as)
        };
        if let Err(error) = attempt {
            // Most often another process won the race; its server shows up on the next round.
            last_error = Some(error);
            std::thread::sleep(Duration::from_millis(100 + fastrand::u64(..200)));
        }
    }
    Err(last_error.unwrap_or_else(|| TestServerError::Command {
        program: "pg_ctl".to_owned(),
        output: format!(
            "the shared test server in {} did not come up within {START_WAIT:?}",
            dir.display()
        ),
    }))
}

fn prepare_directory(dir: &Path, run_as: Option<(u32, u32)>) -> Result<(), TestServerError> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        // Only its user may reach the socket and files: the server trusts local connections.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("restricting {}", dir.display())))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io(
                "handing the shared server's directory to an unprivileged user",
            ))?;
        }
    }
    Ok(())
}

/// The port of a server that is up and accepting connections in `dir`, from its
/// `postmaster.pid` (pid, data directory, start time, port, socket directory, listen address,
/// shared memory key, status).
fn running_port(dir: &Path) -> Option<u16> {
    let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
    let lines: Vec<&str> = pid_file.lines().collect();
    let pid: u32 = lines.first()?.trim().parse().ok()?;
    let port: u16 = lines.get(3)?.trim().parse().ok()?;
    let ready = lines.get(7).is_some_and(|status| status.trim() == "ready");
    let alive = Path::new(&format!("/proc/{pid}")).is_dir();
    let reachable = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    (ready && alive && reachable).then_some(port)
}

/// A new cluster made in a private directory and renamed to `data` (if another process's
/// got there first, ours is thrown away).
fn initdb(bin: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Result<(), TestServerError> {
    let private = dir.join(format!("data.{}.new", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    let mut initdb = command(bin, "initdb", dir, run_as);
    initdb.arg("-D").arg(&private).args(INITDB_FLAGS);
    run(initdb, "initdb", None)?;
    if std::fs::rename(&private, dir.join("data")).is_err() {
        let _ = std::fs::remove_dir_all(&private);
    }
    Ok(())
}

/// `pg_ctl start` on a free port; fails if another process's server holds the directory.
fn start(bin: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Result<(), TestServerError> {
    let port = free_port()?;
    let options = format!(
        "-k {} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=300 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        dir.display()
    );
    let log = dir.join("server.log");
    let mut pg_ctl = command(bin, "pg_ctl", dir, run_as);
    pg_ctl
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(&log)
        .args(["-o", &options, "-w", "start"]);
    run(pg_ctl, "pg_ctl", Some(&log))?;
    touch();
    spawn_idle_stop(bin, dir, run_as)
}

/// A shell that stops the server (`pg_ctl stop -m fast`) once no test process has handed out
/// or dropped a database for the idle time, and ends with the server it was started for.
fn spawn_idle_stop(
    bin: &Path,
    dir: &Path,
    run_as: Option<(u32, u32)>,
) -> Result<(), TestServerError> {
    let minutes = std::env::var(IDLE_VARIABLE)
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_IDLE_MINUTES)
        .max(1);
    let script = format!(
        "pid=$(head -n 1 '{dir}/data/postmaster.pid'); \
         while sleep 20; do \
           [ \"$(head -n 1 '{dir}/data/postmaster.pid' 2>/dev/null)\" = \"$pid\" ] || exit 0; \
           if [ -z \"$(find '{dir}/last-used' -mmin -{minutes} 2>/dev/null)\" ]; then \
             '{pg_ctl}' -D '{dir}/data' -m fast stop >/dev/null 2>&1; exit 0; \
           fi; \
         done",
        dir = dir.display(),
        pg_ctl = bin.join("pg_ctl").display(),
    );
    let mut watcher = Command::new("sh");
    watcher
        .args(["-c", &script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: Ctrl-C in the terminal of the test run that started it
        // must not end it.
        .process_group(0);
    if let Some((uid, gid)) = run_as {
        watcher.uid(uid).gid(gid);
    }
    watcher
        .spawn()
        .map_err(io("starting the shared server's idle watcher"))?;
    Ok(())
}

/// Records that the shared server is in use now (the idle watcher reads the file's time).
pub(crate) fn touch() {
    let path = directory().join("last-used");
    let touched = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .and_then(|file| file.set_modified(SystemTime::now()));
    if let Err(error) = touched {
        log::debug!(
            "marking the shared test server in use ({}): {error}",
            path.display()
        );
    }
}

/// Stops the machine's shared test server (the one test databases come from when
/// `MIGRATE_TEST_DATABASE_URL` is unset) and removes its directory with every template and
/// kept database in it. It also stops by itself after `MIGRATE_TEST_SERVER_IDLE_MINUTES`
/// (default 30) minutes without use, keeping its data. Nothing happens if it is not there.
///
/// ```no_run
/// migrate_runtime::testing::stop_shared_server()?;
/// # Ok::<(), migrate_runtime::testing::TestServerError>(())
/// ```
pub fn stop_shared_server() -> Result<(), TestServerError> {
    let dir = directory();
    if !dir.exists() {
        return Ok(());
    }
    if let (Some(bin), true) = (find_binaries(), dir.join("data/postmaster.pid").exists()) {
        let mut pg_ctl = command(&bin, "pg_ctl", &dir, unprivileged_user_if_root());
        pg_ctl
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run(pg_ctl, "pg_ctl", None)?;
    }
    std::fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))
}
