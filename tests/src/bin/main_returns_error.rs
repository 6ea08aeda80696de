//! The README's "Applying migrations" program, as written there, over a set whose third
//! migration fails: what an application whose `main` returns the error prints (Rust prints
//! `Error: ` and the error's `Debug`, which is its rendered text).

static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/valid/fails_at_run");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut client = postgres::Client::connect(&std::env::var("DATABASE_URL")?, postgres::NoTls)?;
    migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
    // ... start the service
    Ok(())
}
