//! An application's own binary with the migration command line built in (`myapp migrate`).

use std::process::Command;

use migrate_runtime::testing::TestServer;
use migrate_test_support::process::Run;

fn myapp(database_url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_myapp"))
        .env("DATABASE_URL", database_url)
        .env_remove("MIGRATE_ENV")
        .args(args)
        .output()
        .unwrap();
    let run = Run::of(&output);
    (run.code, run.stdout, run.stderr)
}

#[test]
fn the_embedded_set_is_applied_and_inspected_through_the_application() {
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();

    let (code, stdout, stderr) = myapp(&url, &["migrate", "up"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("applied")).count(),
        10,
        "{stdout}"
    );
    assert!(stdout.contains("add_concurrent_indexes"), "{stdout}");

    let (code, stdout, _) = myapp(&url, &["migrate", "status", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let lancio = &status["migrations"][10];
    assert_eq!(lancio["name"], "create_lancio_org");
    assert_eq!(lancio["state"], "filtered_by_environment");
    assert_eq!(lancio["path"], "../migrations/011_create_lancio_org.sql");

    // `new` and `--dir` are the standalone binary's: an embedded set has no directory.
    let (code, _, stderr) = myapp(&url, &["migrate", "new", "x"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: unrecognized subcommand 'new'"),
        "{stderr}"
    );
    let (code, stdout, _) = myapp(&url, &["migrate", "--help"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("--dir"), "{stdout}");
    assert!(!stdout.contains("\n  new "), "{stdout}");

    let (code, stdout, _) = myapp(&url, &["serve"]);
    assert_eq!(
        (code, stdout.trim()),
        (0, "the application would start here")
    );
}

/// `myapp migrate up` with no database configured refuses (in production too) instead of
/// applying to a server it throws away; `--throwaway` asks for that server explicitly.
#[test]
fn without_a_database_the_application_refuses_unless_asked_for_a_throwaway_server() {
    let unconfigured = |env: &[(&str, &str)], args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_myapp"));
        migrate_test_support::process::without_settings(&mut command);
        Run::of(
            &command
                .envs(env.iter().copied())
                .args(args)
                .output()
                .unwrap(),
        )
    };
    for env in [&[][..], &[("MIGRATE_ENV", "production")]] {
        let run = unconfigured(env, &["migrate", "up"]);
        assert_eq!(run.code, 2, "{env:?}: {}", run.all());
        assert!(
            run.stderr.starts_with("error: no database configured\n"),
            "{env:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("\n   = help: to try the migrations on a throwaway PostgreSQL server that is removed afterwards, pass --throwaway\n"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "nothing was applied");
    }
    let run = unconfigured(&[], &["migrate", "up", "--throwaway"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.starts_with(
            "--throwaway: using a throwaway PostgreSQL server, removed when this command ends\n"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("applied"))
            .count(),
        10,
        "{}",
        run.stdout
    );
    let run = unconfigured(
        &[("MIGRATE_ENV", "production")],
        &["migrate", "up", "--throwaway"],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("refusing it in production"),
        "{}",
        run.stderr
    );
}
