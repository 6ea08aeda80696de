static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/duplicate_version");

fn main() {
    let _ = MIGRATIONS;
}
