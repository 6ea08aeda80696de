static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/set_requires");

fn main() {
    let _ = MIGRATIONS;
}
