static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/psql_meta_command");

fn main() {
    let _ = MIGRATIONS;
}
