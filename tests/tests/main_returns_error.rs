//! What a user sees when `fn main() -> Result<(), Box<dyn std::error::Error>>` returns a
//! migration failure (`tests/src/bin/main_returns_error.rs`, the README's program): the
//! rendered error, not the variant's fields.

use std::process::Command;

use migrate_runtime::testing::TestServer;
use migrate_test_support::process::{without_settings, Run};

#[test]
fn main_returning_a_migration_failure_prints_the_rendered_error() {
    let database = TestServer::shared().create_database().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_main_returns_error"));
    without_settings(&mut command).env("DATABASE_URL", database.url());
    let run = Run::of(&command.output().unwrap());

    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(run.stdout, "");
    let expected =
        "Error: error: migration 3 (fill_c) failed: relation \"missing_table\" does not exist\n  \
                    --> fixtures/valid/fails_at_run/003_fill_c.sql:3:13\n   \
                    = SQLSTATE 42P01\n   \
                    = note: nothing of this migration was kept; migrations before it stay applied\n";
    assert_eq!(run.stderr, expected);
    for structural in ["MigrationFailed", "MigrationFailure {", "version:"] {
        assert!(!run.stderr.contains(structural), "{}", run.stderr);
    }

    // The first two were applied and stay applied; the third left nothing.
    let mut client = database.client().unwrap();
    let applied: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(applied, [1, 2]);
}
