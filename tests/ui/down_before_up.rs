static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/down_before_up");

fn main() {
    let _ = MIGRATIONS;
}
