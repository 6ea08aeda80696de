//! An application binary that owns the example schema: `myapp migrate ...` is the full
//! migration command line over the migrations embedded at compile time; anything else is
//! "the application".
#![allow(clippy::print_stdout)] // The stand-in application says hello on standard output.

use std::process::ExitCode;

static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("../migrations");

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return migrate_runtime::cli::main(MIGRATIONS);
    }
    println!("the application would start here");
    ExitCode::SUCCESS
}
