static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/squash");

fn main() {
    let _ = MIGRATIONS;
}
