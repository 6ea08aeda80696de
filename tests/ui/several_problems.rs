static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/several_problems");

fn main() {
    let _ = MIGRATIONS;
}
