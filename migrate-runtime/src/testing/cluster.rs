//! Running PostgreSQL's server programs for the throwaway servers (the per-process one and the
//! shared one): the command, the text of its failure, a new cluster's `initdb` flags, and who
//! runs them.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{io, TestServerError};

/// `initdb`'s flags for every throwaway cluster: a trusted `postgres` superuser, UTF-8, the C
/// locale, and no fsync of the new files (a test cluster is not worth the wait).
pub(super) const INITDB_FLAGS: [&str; 8] = [
    "-U",
    "postgres",
    "-A",
    "trust",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
];

/// `program` from the server's binaries, run in `dir`, as `run_as` when given.
pub(super) fn command(
    bin: &Path,
    program: &str,
    dir: &Path,
    run_as: Option<(u32, u32)>,
) -> Command {
    let mut command = Command::new(bin.join(program));
    if let Some((uid, gid)) = run_as {
        // initdb and postgres refuse to run as root.
        command.uid(uid).gid(gid).env("HOME", dir);
    }
    command.current_dir(dir).stdin(Stdio::null());
    command
}

/// Runs `command`; a failure carries what it printed and the last lines of the server's
/// `log`, when there is one.
pub(super) fn run(
    mut command: Command,
    program: &str,
    log: Option<&Path>,
) -> Result<(), TestServerError> {
    let output = command.output().map_err(io(format!("running {program}")))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    if let Some(log) = log.and_then(|log| std::fs::read_to_string(log).ok()) {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        text.push_str("\nserver log (last lines):\n");
        text.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Err(TestServerError::Command {
        program: program.to_owned(),
        output: text.trim().to_owned(),
    })
}

/// This process's effective user id (Linux: from `/proc/self/status`).
pub(super) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
