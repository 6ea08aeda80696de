static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/mixed_layouts");

fn main() {
    let _ = MIGRATIONS;
}
