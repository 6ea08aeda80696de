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
#[allow(clippy::print_stdout)] // Cargo reads build-script instructions from standard output.
pub fn rerun_if_migrations_change(dir: &str) {
    println!("cargo::rerun-if-changed={dir}");
}
