static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/copy_from_stdin");

fn main() {
    let _ = MIGRATIONS;
}
