static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/does_not_exist");

fn main() {
    let _ = MIGRATIONS;
}
