static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/concurrently_in_transaction");

fn main() {
    let _ = MIGRATIONS;
}
