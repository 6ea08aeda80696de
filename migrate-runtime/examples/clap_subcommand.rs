//! An application with its own clap command line, in which `migrate` is one subcommand among
//! its own: `clap_subcommand serve` would start the service, `clap_subcommand migrate up`
//! (or `status --json`, `plan`, ... everything but the standalone binary's `new` and `--dir`)
//! applies or inspects the migrations embedded from `migrations/`.
//!
//! ```text
//! cargo run -p migrate-runtime --features cli --example clap_subcommand -- migrate status
//! ```
#![allow(clippy::print_stdout)] // The stand-in service says what it would do.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use migrate_runtime::Migration;

static MIGRATIONS: &[Migration] = migrate_macros::embed_migrations!("../migrations");

/// An application that owns a PostgreSQL schema.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The application's own option.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the service.
    Serve,
    /// Apply and inspect the database's migrations.
    Migrate(migrate_runtime::cli::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => {
            println!("the service would listen on {}", cli.listen);
            ExitCode::SUCCESS
        }
        Command::Migrate(args) => migrate_runtime::cli::run_parsed(MIGRATIONS, args),
    }
}
