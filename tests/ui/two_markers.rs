static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/two_markers");

fn main() {
    let _ = MIGRATIONS;
}
