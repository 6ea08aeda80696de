//! The README's start-up program, as written there, over a set whose third
//! migration fails: what an application whose `main` returns the error prints (Rust prints
//! `Error: ` and the error's `Debug`, which is its rendered text).
#![allow(clippy::print_stdout)] // As the README's program does.

static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/valid/fails_at_run");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut client = postgres::Client::connect(&std::env::var("DATABASE_URL")?, postgres::NoTls)?;
    let report = migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
    println!("{} migration(s) applied", report.applied.len());
    // ... start the service
    Ok(())
}
