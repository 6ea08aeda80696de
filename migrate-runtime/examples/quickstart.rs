//! Applies the repository's `migrations/` to the configured database (`DATABASE_URL`, `DB_*`
//! or `PG*`), or, when none is configured, to a throwaway PostgreSQL server started for the
//! occasion (a demo's convenience: `migrate up` refuses without a database); then prints
//! what was applied and the resulting status. Run it twice against the same database to see the no-op start-up.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A demo that reports to the terminal.

use std::time::Instant;

use migrate_runtime::config::ConnectionSettings;
use migrate_runtime::testing::TestServer;
use migrate_runtime::{Migration, Migrator};
use postgres::Client;

static MIGRATIONS: &[Migration] = migrate_macros::embed_migrations!("../migrations");

fn main() {
    if let Err(error) = run() {
        match error.downcast_ref::<migrate_runtime::Error>() {
            Some(error) => eprintln!("{}", error.render()),
            None => eprintln!("{error}"),
        }
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // A configured database (DATABASE_URL, DB_*, PG*: set but unusable is an error), or, for
    // this demo only, a throwaway server when nothing is configured at all.
    let server;
    let settings = match ConnectionSettings::from_env(None)? {
        Some(settings) => settings,
        None => {
            eprintln!("no database configured (DATABASE_URL, DB_*, PG*): starting a throwaway PostgreSQL server for this demo");
            server = TestServer::start()?;
            ConnectionSettings::from_config(server.config("postgres"))
        }
    };
    eprintln!(
        "connecting to {} (from {})",
        settings.describe(),
        settings.source()
    );
    let mut client: Client = settings.connect()?;

    let mut migrator = Migrator::new(MIGRATIONS);
    if let Ok(environment) = std::env::var("MIGRATE_ENV") {
        migrator = migrator.environment(&environment);
    }
    let started = Instant::now();
    let report = migrator.run(&mut client)?;
    for applied in &report.applied {
        println!(
            "applied {:>4} {:<34} {:>6} ms",
            applied.version,
            applied.name,
            applied.duration.as_millis()
        );
    }
    println!(
        "{} migration(s) applied in {} ms\n",
        report.applied.len(),
        started.elapsed().as_millis()
    );

    let applied = migrator.applied(&mut client)?;
    println!(
        "{:>7}  {:<34} {:<10} {:>8}  by",
        "version", "name", "status", "ms"
    );
    for migration in MIGRATIONS {
        match applied
            .iter()
            .find(|row| row.version == migration.version())
        {
            Some(row) => println!(
                "{:>7}  {:<34} {:<10} {:>8}  {}",
                row.version, row.name, row.status, row.execution_time_ms, row.applied_by
            ),
            None => {
                let environments: Vec<&str> = migration.environments().collect();
                let state = if environments.is_empty() {
                    "pending".to_owned()
                } else {
                    format!("only for MIGRATE_ENV={}", environments.join(" or "))
                };
                println!(
                    "{:>7}  {:<34} {state}",
                    migration.version(),
                    migration.name()
                );
            }
        }
    }
    Ok(())
}
