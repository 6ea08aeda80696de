static BY_NAME: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!(migrations);
static TWO: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("a", "b");

fn main() {
    let _ = (BY_NAME, TWO);
}
