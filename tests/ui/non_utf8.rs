static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/non_utf8");

fn main() {
    let _ = MIGRATIONS;
}
