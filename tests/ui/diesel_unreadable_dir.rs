static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/diesel_unreadable_dir");

fn main() {
    let _ = MIGRATIONS;
}
