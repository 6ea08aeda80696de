static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/unknown_directive");

fn main() {
    let _ = MIGRATIONS;
}
