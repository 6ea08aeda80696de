static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/bad_file_name");

fn main() {
    let _ = MIGRATIONS;
}
