static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/version_too_large");

fn main() {
    let _ = MIGRATIONS;
}
