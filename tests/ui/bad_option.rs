static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/lint", lenient);

fn main() {
    let _ = MIGRATIONS;
}
