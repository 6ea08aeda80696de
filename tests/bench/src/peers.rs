//! Peers that run as their own processes: dbmate (from the npm registry, whose package ships
//! the binary) and sqlx-cli (built by `cargo install`). `--install-peers` installs them under
//! `target/bench-peers`; without them the benchmark simply leaves them out.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::Tool;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-peers")
}

fn binary(tool: Tool) -> PathBuf {
    match tool {
        Tool::Dbmate => root().join("npm/node_modules/.bin/dbmate"),
        _ => root().join("cargo/bin/sqlx"),
    }
}

/// The peers whose binaries are installed.
pub(crate) fn available() -> Vec<Tool> {
    [Tool::Dbmate, Tool::Sqlx]
        .into_iter()
        .filter(|tool| binary(*tool).is_file())
        .collect()
}

/// Installs both peers from their registries (a few minutes: sqlx-cli compiles).
pub(crate) fn install() {
    let root = root();
    std::fs::create_dir_all(root.join("npm")).unwrap();
    let npm = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(root.join("npm"))
        .arg("dbmate@2")
        .status();
    eprintln!("dbmate: {npm:?}");
    let cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "install",
            "sqlx-cli",
            "--version",
            "^0.8",
            "--locked",
            "--no-default-features",
            "--features",
            "postgres,rustls",
            "--root",
        ])
        .arg(root.join("cargo"))
        .status();
    eprintln!("sqlx-cli: {cargo:?}");
}

/// One apply-all by the peer's own command line against `url` (process start included, as
/// for psql).
pub(crate) fn apply(tool: Tool, url: &str, dir: &Path) -> Duration {
    let mut command = Command::new(binary(tool));
    match tool {
        Tool::Dbmate => command
            .args(["--url", url, "--migrations-dir"])
            .arg(dir)
            .args(["--no-dump-schema", "up"]),
        _ => command
            .args(["migrate", "run", "--database-url", url, "--source"])
            .arg(dir),
    };
    let started = Instant::now();
    let output = command
        .stdout(Stdio::null())
        .output()
        .expect("the peer runs");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{tool:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}
