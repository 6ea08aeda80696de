static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/nul_byte");

fn main() {
    let _ = MIGRATIONS;
}
