static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/diesel_missing_up");

fn main() {
    let _ = MIGRATIONS;
}
