//! This crate's examples embed the repository's `migrations/`; rebuild them when a file is
//! added there. (A build script cannot call its own crate, so this is the one line that
//! `migrate_runtime::build::rerun_if_migrations_change` prints.)

fn main() {
    println!("cargo::rerun-if-changed=../migrations");
    println!("cargo::rerun-if-changed=build.rs");
}
