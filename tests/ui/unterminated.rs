static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/unterminated");

fn main() {
    let _ = MIGRATIONS;
}
