static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/lint", lint);

fn main() {
    let _ = MIGRATIONS;
}
