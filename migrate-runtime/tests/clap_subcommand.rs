//! `examples/clap_subcommand.rs`, built and run as a user runs it: an application's own clap
//! command line with `migrate` nested in it ([`migrate_runtime::cli::MigrateArgs`]), against a
//! real PostgreSQL. (Needs the `cli` and `testing` features.)

use std::path::PathBuf;
use std::process::Command;

use migrate_runtime::testing::TestServer;
use migrate_test_support::process::{without_settings, Run};

/// The example, built with this test's features (so the library is not built twice).
fn example() -> PathBuf {
    let features: Vec<&str> = [
        ("default", cfg!(feature = "default")),
        ("runtime", cfg!(feature = "runtime")),
        ("testing", cfg!(feature = "testing")),
        ("tls", cfg!(feature = "tls")),
        ("cli", cfg!(feature = "cli")),
        ("http", cfg!(feature = "http")),
        ("tokio", cfg!(feature = "tokio")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    migrate_test_support::process::example("migrate-runtime", "clap_subcommand", &features)
}

fn run(binary: &PathBuf, database_url: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(binary);
    without_settings(&mut command).env("NO_COLOR", "1");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    Run::of(&command.args(args).output().unwrap())
}

/// The states of the example set's migrations, in order.
fn states(run: &Run) -> Vec<String> {
    let status = run.json();
    status["migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("no migrations: {status}"))
        .iter()
        .map(|migration| migration["state"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_application_runs_migrate_up_and_status_through_its_own_command_line() {
    let binary = example();
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();

    let status = run(&binary, Some(&url), &["migrate", "status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.all());
    let before = states(&status);
    assert_eq!(before.len(), 11, "{}", status.stdout);
    assert!(
        before[..10].iter().all(|state| state == "pending"),
        "{before:?}"
    );
    // 011 is for one environment only, and none is set.
    assert_eq!(before[10], "filtered_by_environment");
    assert_eq!(status.json()["pending"], 10);

    let up = run(&binary, Some(&url), &["migrate", "up"]);
    assert_eq!(up.code, 0, "{}", up.all());
    assert_eq!(
        up.stdout
            .lines()
            .filter(|l| l.starts_with("applied"))
            .count(),
        10,
        "{}",
        up.stdout
    );

    let status = run(&binary, Some(&url), &["migrate", "status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.all());
    let after = states(&status);
    assert!(
        after[..10].iter().all(|state| state == "applied"),
        "{after:?}"
    );
    assert_eq!(status.json()["pending"], 0);
    let applied = database
        .client()
        .unwrap()
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(applied, 10);

    // The application's own subcommand and option are still its own.
    let serve = run(&binary, None, &["--listen", "0.0.0.0:1", "serve"]);
    assert_eq!(
        (serve.code, serve.stdout.trim()),
        (0, "the service would listen on 0.0.0.0:1")
    );

    // Our exit codes and errors: no database configured is a configuration error (2).
    let unconfigured = run(&binary, None, &["migrate", "status"]);
    assert_eq!(unconfigured.code, 2, "{}", unconfigured.all());
    assert!(
        unconfigured
            .stderr
            .starts_with("error: no database configured\n"),
        "{}",
        unconfigured.stderr
    );
}

/// The nested form has what works on an embedded set: no `new` and no `--dir`, which create
/// and read files in a migrations directory (the standalone binary keeps them).
#[test]
fn the_nested_help_lists_no_new_and_no_dir() {
    let binary = example();
    let help = run(&binary, None, &["--help"]);
    assert_eq!(help.code, 0, "{}", help.all());
    assert!(
        help.stdout
            .contains("\n  migrate  Apply and inspect the database's migrations\n"),
        "{}",
        help.stdout
    );
    assert!(
        help.stdout.contains("\n  serve    Start the service\n"),
        "{}",
        help.stdout
    );

    for args in [
        &["migrate", "--help"][..],
        &["migrate", "-h"],
        &["help", "migrate"],
        &["migrate", "up", "--help"],
        &["migrate", "status", "--help"],
    ] {
        let help = run(&binary, None, args);
        assert_eq!(help.code, 0, "{args:?}: {}", help.all());
        assert!(
            help.stdout.contains("--database-url"),
            "{args:?}: {}",
            help.stdout
        );
        assert!(!help.stdout.contains("--dir"), "{args:?}: {}", help.stdout);
        assert!(
            !help.stdout.contains("MIGRATIONS_DIR"),
            "{args:?}: {}",
            help.stdout
        );
        assert!(
            !help
                .stdout
                .lines()
                .any(|line| line.trim_start().starts_with("new ")),
            "{args:?}: {}",
            help.stdout
        );
    }
    let help = run(&binary, None, &["migrate", "--help"]);
    assert!(help.stdout.contains("\n  status  "), "{}", help.stdout);
    assert!(
        help.stdout.contains("\nExit codes: 0 success;"),
        "{}",
        help.stdout
    );

    let new = run(&binary, None, &["migrate", "new", "add_roles"]);
    assert_eq!(new.code, 2, "{}", new.all());
    assert!(
        new.stderr
            .starts_with("error: unrecognized subcommand 'new'"),
        "{}",
        new.stderr
    );
    let dir = run(&binary, None, &["migrate", "--dir", "migrations", "status"]);
    assert_eq!(dir.code, 2, "{}", dir.all());
    assert!(
        dir.stderr
            .starts_with("error: unexpected argument '--dir' found"),
        "{}",
        dir.stderr
    );
}
