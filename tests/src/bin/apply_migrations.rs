//! Applies the migrations in a directory to `DATABASE_URL` and prints how many it applied:
//! the process the concurrency tests start many of at once.
#![allow(clippy::print_stdout, clippy::print_stderr)] // Its output is what the tests read.

use std::path::Path;
use std::time::Duration;

use migrate_runtime::Migrator;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: apply_migrations DIR");
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let migrations = match migrate_runtime::source::read_dir(Path::new(&dir), "") {
        Ok(loaded) => loaded.migrations,
        Err(problems) => {
            eprintln!("{problems}");
            std::process::exit(2);
        }
    };
    let mut client = match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("connecting: {error}");
            std::process::exit(2);
        }
    };
    match Migrator::new(&migrations)
        .lock_wait(Duration::from_secs(60))
        .run(&mut client)
    {
        Ok(report) => println!("{}", report.applied.len()),
        Err(error) => {
            eprintln!("{}", error.render());
            std::process::exit(1);
        }
    }
}
