static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/empty_up");

fn main() {
    let _ = MIGRATIONS;
}
