//! The examples and tests of this crate embed the repository's `migrations/`: rebuild them
//! when a file is added there (what `migrate_runtime::build::rerun_if_migrations_change`
//! does for an application; this crate cannot call itself from its own build script). The
//! directory is absent from the published crate, where nothing is printed but the script.

#[allow(clippy::print_stdout)] // Cargo reads build-script instructions from standard output.
fn main() {
    if std::path::Path::new("../migrations").is_dir() {
        println!("cargo::rerun-if-changed=../migrations");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
