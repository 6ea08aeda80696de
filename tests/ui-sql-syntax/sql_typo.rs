static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/sql_typo");

fn main() {
    let _ = MIGRATIONS;
}
