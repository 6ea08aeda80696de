static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/lock_timeout");

fn main() {
    let _ = MIGRATIONS;
}
