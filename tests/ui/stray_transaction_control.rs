static MIGRATIONS: &[migrate_runtime::Migration] =
    migrate_macros::embed_migrations!("fixtures/invalid/stray_transaction_control");

fn main() {
    let _ = MIGRATIONS;
}
