//! A crate whose build does not watch its migrations directory gets a compile-time warning
//! from `embed_migrations!` that says which line to add to which file; following it makes a
//! newly added file rebuild the crate. Each case is a small crate of its own, built by Cargo
//! as a user builds it (offline, dependencies shared between the cases), and run.

use std::path::{Path, PathBuf};
use std::process::Command;

use migrate_test_support::process::Run;

const NO_BUILD_SCRIPT: &str = "warning: use of deprecated constant `MIGRATIONS::new_migration_files_are_not_seen`: a migration file added to `migrations` will not rebuild this crate, so the binary would silently keep the old set: create build.rs beside Cargo.toml with `fn main() { migrate_runtime::build::rerun_if_migrations_change(\"migrations\"); }`, and add migrate-runtime (default-features = false) to [build-dependencies]";

const NOT_WATCHED: &str = "warning: use of deprecated constant `MIGRATIONS::new_migration_files_are_not_seen`: a migration file added to `migrations` will not rebuild this crate, so the binary would silently keep the old set: add `migrate_runtime::build::rerun_if_migrations_change(\"migrations\");` to `fn main` in this crate's build.rs";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A binary crate printing how many migrations it embeds, with one migration.
fn probe(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    std::fs::write(
        root.join("migrations/001_a.sql"),
        "CREATE TABLE a (id int);\n",
    )
    .unwrap();
    let workspace = workspace();
    let runtime = workspace.join("migrate-runtime");
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nmigrate-runtime = {{ path = {runtime:?}, default-features = false }}\n\
             migrate-macros = {{ path = {:?} }}\n\n\
             [build-dependencies]\nmigrate-runtime = {{ path = {runtime:?}, default-features = false }}\n\n\
             [workspace]\n",
            workspace.join("migrate-macros"),
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("src/main.rs"),
        "static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!();\n\
         fn main() {\n    println!(\"{}\", MIGRATIONS.len());\n}\n",
    )
    .unwrap();
    // The workspace's versions, so the dependencies build once for every case, offline.
    std::fs::copy(workspace.join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    dir
}

/// `cargo build` of the crate: its output, and then what the binary prints.
fn build_and_run(dir: &Path) -> (Run, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("rebuild-warning"),
        )
        // This test's own build settings must not leak into the crate's build.
        .env_remove("OUT_DIR")
        .env_remove("MIGRATE_MACROS_MANIFEST_DIR")
        .env_remove("RUSTFLAGS")
        .env("CARGO_TERM_COLOR", "never")
        .args(["build", "--offline"]);
    let build = Run::of(&command.output().unwrap());
    assert_eq!(build.code, 0, "{}", build.all());
    let name = dir.join("Cargo.toml");
    let name = std::fs::read_to_string(name).unwrap();
    let name = name
        .lines()
        .find_map(|line| line.strip_prefix("name = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("rebuild-warning/debug")
        .join(name);
    let output = Command::new(binary).output().unwrap();
    (
        build,
        String::from_utf8(output.stdout).unwrap().trim().to_owned(),
    )
}

fn add_migration(dir: &Path) {
    std::fs::write(
        dir.join("migrations/002_b.sql"),
        "CREATE TABLE b (id int);\n",
    )
    .unwrap();
}

#[test]
fn without_a_build_script_the_macro_warns_and_its_advice_makes_new_files_rebuild() {
    let dir = probe("probe_no_build_script");
    let (build, count) = build_and_run(dir.path());
    assert!(build.stderr.contains(NO_BUILD_SCRIPT), "{}", build.stderr);
    assert!(
        build
            .stderr
            .contains("static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!();"),
        "the warning points at the macro call: {}",
        build.stderr
    );
    assert_eq!(count, "1");
    // What it warns about: the new file is not seen.
    add_migration(dir.path());
    assert_eq!(build_and_run(dir.path()).1, "1");

    // As the warning says: build.rs with that line (migrate-runtime is a build-dependency).
    std::fs::write(
        dir.path().join("build.rs"),
        "fn main() { migrate_runtime::build::rerun_if_migrations_change(\"migrations\"); }\n",
    )
    .unwrap();
    let (build, count) = build_and_run(dir.path());
    assert!(!build.stderr.contains("warning"), "{}", build.stderr);
    assert_eq!(count, "2");
    std::fs::write(
        dir.path().join("migrations/003_c.sql"),
        "CREATE TABLE c (id int);\n",
    )
    .unwrap();
    assert_eq!(build_and_run(dir.path()).1, "3", "a new file rebuilds");
}

#[test]
fn a_build_script_that_does_not_watch_the_directory_is_warned_about() {
    let dir = probe("probe_other_build_script");
    std::fs::write(
        dir.path().join("build.rs"),
        "fn main() { println!(\"cargo::rerun-if-changed=build.rs\"); }\n",
    )
    .unwrap();
    let (build, count) = build_and_run(dir.path());
    assert!(build.stderr.contains(NOT_WATCHED), "{}", build.stderr);
    assert_eq!(count, "1");

    // As the warning says: add the line to build.rs's `fn main`.
    std::fs::write(
        dir.path().join("build.rs"),
        "fn main() {\n    println!(\"cargo::rerun-if-changed=build.rs\");\n    migrate_runtime::build::rerun_if_migrations_change(\"migrations\");\n}\n",
    )
    .unwrap();
    let (build, _) = build_and_run(dir.path());
    assert!(!build.stderr.contains("warning"), "{}", build.stderr);
    add_migration(dir.path());
    assert_eq!(build_and_run(dir.path()).1, "2", "a new file rebuilds");
}
