static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/phases");

fn main() {
    let _ = MIGRATIONS;
}
