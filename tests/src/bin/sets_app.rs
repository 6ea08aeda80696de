//! An application that combines its own migrations with a library's (two migration sets):
//! `sets_app migrate ...` is the command line over both.

use std::process::ExitCode;

use migrate_runtime::{Migration, MigrationSet};

static APP: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/sets/app");
/// The queue library crate's own set (a dependency, embedded from its own directory).
static QUEUE: &[Migration] = migrate_fixture_queue::MIGRATIONS;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        // `sets_app migrate up` parses as `migrate up`.
        return migrate_runtime::cli::main_sets(&[
            MigrationSet::new("app", APP),
            MigrationSet::new("queue", QUEUE),
        ]);
    }
    ExitCode::SUCCESS
}
