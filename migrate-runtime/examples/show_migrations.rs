//! Prints the migrations embedded from `migrations/`: what `cargo build` checked and what a
//! runtime would apply, in order.
#![allow(clippy::print_stdout)] // An example that reports on standard output.

use migrate_runtime::Migration;

static MIGRATIONS: &[Migration] = migrate_macros::embed_migrations!("../migrations");

fn main() {
    println!(
        "{:>7}  {:<34} {:<16} {:<12} checksum",
        "version", "name", "mode", "down"
    );
    for migration in MIGRATIONS {
        let mode = if migration.up().is_transactional() {
            "transaction"
        } else {
            "no-transaction"
        };
        let down = if migration.down().is_some() {
            "reversible"
        } else {
            "irreversible"
        };
        let mut notes = Vec::new();
        if !migration.requires().is_empty() {
            notes.push(format!("requires {:?}", migration.requires()));
        }
        let environments: Vec<&str> = migration.environments().collect();
        if !environments.is_empty() {
            notes.push(format!("only in {}", environments.join(", ")));
        }
        println!(
            "{:>7}  {:<34} {:<16} {:<12} {}  {}",
            migration.version(),
            migration.name(),
            mode,
            down,
            &migration.checksum().to_string()[..19],
            notes.join("; ")
        );
    }
    println!(
        "{} migrations embedded and checked at compile time",
        MIGRATIONS.len()
    );
}
