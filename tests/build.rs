//! Rebuild the tests when a migration file is added to a directory they embed.

fn main() {
    for dir in ["../migrations", "fixtures"] {
        migrate_runtime::build::rerun_if_migrations_change(dir);
    }
}
