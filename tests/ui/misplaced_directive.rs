static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/misplaced_directive");

fn main() {
    let _ = MIGRATIONS;
}
