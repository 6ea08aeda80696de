//! The examples and tests of this crate embed the repository's `migrations/` and test
//! fixtures: rebuild them when a file is added there (what `migrate_runtime::build::rerun_if_migrations_change`
//! does for an application; this crate cannot call itself from its own build script). The
//! directories are absent from the published crate, where nothing is printed but the script.

#[allow(clippy::print_stdout)] // Cargo reads build-script instructions from standard output.
fn main() {
    for embedded in ["../migrations", "../tests/fixtures"] {
        if std::path::Path::new(embedded).is_dir() {
            println!("cargo::rerun-if-changed={embedded}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
}
