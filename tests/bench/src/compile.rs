//! Compile time of a crate that embeds N generated migration files, ours against refinery's
//! `embed_migrations!`, release and debug: dependencies are prebuilt, then only the embedding
//! crate is rebuilt (its `main.rs` touched). Also the release binary's size.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::workload;

pub(crate) struct Compiled {
    pub(crate) n: usize,
    pub(crate) tool: &'static str,
    pub(crate) release: bool,
    pub(crate) time: Duration,
    pub(crate) binary_bytes: u64,
    pub(crate) sql_bytes: u64,
}

pub(crate) fn measure(sizes: &[usize], refinery_max: usize) -> Vec<Compiled> {
    let root = workspace_root().join("target/bench-compile");
    let mut results = Vec::new();
    for &n in sizes {
        for tool in ["ours", "refinery"] {
            if tool == "refinery" && n > refinery_max {
                continue;
            }
            let crate_dir = scaffold(&root, tool, n);
            for release in [true, false] {
                eprintln!(
                    "  {tool}, N = {n}, {}",
                    if release { "release" } else { "debug" }
                );
                results.push(build(&root, &crate_dir, tool, n, release));
            }
        }
    }
    results
}

/// The repository's root: this crate is `tests/bench/`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A standalone crate (its own `[workspace]`) embedding `n` files with `tool`'s macro.
fn scaffold(root: &Path, tool: &str, n: usize) -> PathBuf {
    let dir = root.join(format!("{tool}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let workspace = workspace_root();
    let (dependencies, main) = match tool {
        "ours" => {
            workload::write_ours(&dir.join("migrations"), n);
            (
                format!(
                    "migrate-runtime = {{ path = {:?}, default-features = false }}\nmigrate-macros = {{ path = {:?} }}\n",
                    workspace.join("migrate-runtime"),
                    workspace.join("migrate-macros")
                ),
                // black_box: otherwise the optimiser keeps only the length and drops the SQL.
                "static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!();\n\
                 fn main() {\n\
                     let migrations = std::hint::black_box(MIGRATIONS);\n\
                     let bytes: usize = migrations.iter().map(|m| m.up().sql().len()).sum();\n\
                     println!(\"{} {bytes}\", migrations.len());\n\
                 }\n",
            )
        }
        _ => {
            workload::write_refinery(&dir.join("migrations"), n);
            (
                "refinery = { version = \"=0.10.0\", default-features = false }\n".to_owned(),
                "refinery::embed_migrations!(\"migrations\");\n\
                 fn main() {\n\
                     let runner = std::hint::black_box(migrations::runner());\n\
                     let bytes: usize = runner.get_migrations().iter().map(|m| m.sql().map_or(0, str::len)).sum();\n\
                     println!(\"{} {bytes}\", runner.get_migrations().len());\n\
                 }\n",
            )
        }
    };
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"embed-{tool}-{n}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[dependencies]\n{dependencies}\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    dir
}

fn cargo_build(root: &Path, crate_dir: &Path, release: bool) {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", root.join("target"))
        .args(["build", "--quiet"]);
    if release {
        command.arg("--release");
    }
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "building {} failed", crate_dir.display());
}

fn build(root: &Path, crate_dir: &Path, tool: &'static str, n: usize, release: bool) -> Compiled {
    // First build: dependencies and the crate. Then the crate alone, twice; keep the faster.
    cargo_build(root, crate_dir, release);
    let mut best = Duration::MAX;
    for _ in 0..2 {
        let main = crate_dir.join("src/main.rs");
        let text = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, text).unwrap();
        let started = Instant::now();
        cargo_build(root, crate_dir, release);
        best = best.min(started.elapsed());
    }
    let binary = root
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join(format!("embed-{tool}-{n}"));
    let sql_bytes = std::fs::read_dir(crate_dir.join("migrations"))
        .unwrap()
        .flatten()
        .map(|entry| entry.metadata().map_or(0, |m| m.len()))
        .sum();
    Compiled {
        n,
        tool,
        release,
        time: best,
        binary_bytes: std::fs::metadata(binary).map_or(0, |m| m.len()),
        sql_bytes,
    }
}
