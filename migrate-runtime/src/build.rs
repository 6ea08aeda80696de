//! The one line a crate's `build.rs` needs so that adding a migration file rebuilds it.

/// Tells Cargo to rebuild the crate when anything in `dir` (relative to the crate root)
/// changes, including a newly added file.
///
/// `embed_migrations!` makes the compiler track every file it embeds, so editing or deleting a
/// migration already triggers a rebuild. A *new* file is invisible to that tracking: on stable
/// Rust a procedural macro cannot ask to be re-run when a directory changes. Call this from
/// `build.rs` to close the gap:
///
/// ```no_run
/// // in build.rs's `fn main`:
/// migrate_runtime::build::rerun_if_migrations_change("migrations");
/// ```
///
/// and add `migrate-runtime` (with `default-features = false`) to `[build-dependencies]`.
///
/// `embed_migrations!` checks at compile time that its directory is watched (through what
/// the build script printed, which Cargo keeps beside `OUT_DIR`, or else through a small file
/// this function writes into `OUT_DIR` naming the directories) and warns when it is not.
#[allow(clippy::print_stdout)] // Cargo reads build-script instructions from standard output.
pub fn rerun_if_migrations_change(dir: &str) {
    println!("cargo::rerun-if-changed={dir}");
    record_watched(dir);
}

/// Adds `dir` to `OUT_DIR/migrate-runtime-watched-dirs`, starting the file afresh at the first
/// call of this build-script run (a directory no longer watched must not stay listed).
fn record_watched(dir: &str) {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};

    static STARTED: AtomicBool = AtomicBool::new(false);
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let first = !STARTED.swap(true, Ordering::SeqCst);
    let path = std::path::Path::new(&out_dir).join("migrate-runtime-watched-dirs");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(!first)
        .truncate(first)
        .open(path);
    // Only a fallback for the compile-time check: a failure to write it costs a warning.
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{dir}");
    }
}
