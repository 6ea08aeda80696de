//! Applies the repository's `migrations/` to `DATABASE_URL`, or, when it is not set, to a
//! throwaway PostgreSQL server started for the occasion; then prints what was applied and the
//! resulting status. Run it twice against the same database to see the no-op start-up.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A demo that reports to the terminal.

use std::time::Instant;

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Migration, Migrator};
use postgres::{Client, NoTls};

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
    let server;
    let config: postgres::Config = match std::env::var("DATABASE_URL") {
        Ok(url) => url.parse()?,
        Err(_) => {
            eprintln!("DATABASE_URL is not set: starting a throwaway PostgreSQL server");
            server = TestServer::start()?;
            server.config("postgres")
        }
    };
    eprintln!("connecting to {}", describe(&config));
    let mut client: Client = config.connect(NoTls)?;

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

/// Where the config points, without its password.
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    format!(
        "host={host} port={} dbname={} user={}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default)")
    )
}
