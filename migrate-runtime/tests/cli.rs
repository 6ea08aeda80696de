//! The standalone `migrate` binary, run as a user would run it, against a real PostgreSQL.
//! (Needs the `cli` and `testing` features: `cargo test -p migrate-runtime --all-features`.)

mod support;

use std::path::Path;
use std::time::Duration;

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_test_support::files::project;
use migrate_test_support::process::Run;
use serde_json::Value;
use support::binary;

const PASSWORD: &str = "Pa55-never-shown";

fn migrate(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let output = binary()
        .current_dir(dir)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    let run = Run::of(&output);
    assert!(
        !run.all().contains(PASSWORD),
        "the password leaked:\n{}",
        run.all()
    );
    run
}

/// Three migrations that each create a table.
fn three_good() -> tempfile::TempDir {
    project(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("002_b.sql", "CREATE TABLE b (id int);\n"),
        ("003_c.sql", "CREATE TABLE c (id int);\n"),
    ])
}

fn three() -> tempfile::TempDir {
    project(&[
        ("001_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n"),
        ("002_b.sql", "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n"),
        ("003_c.sql", "-- migrate:up\nCREATE TABLE c (id int);\nINSERT INTO c SELECT * FROM nowhere;\n-- migrate:down\nDROP TABLE c;\n"),
    ])
}

/// `DATABASE_URL` for `database`, with a password (the server trusts local connections, so
/// any password works; the point is that it never shows).
fn url(database: &TestDatabase<'_>) -> String {
    database
        .url()
        .replace("postgres@", &format!("postgres:{PASSWORD}@"))
}

fn tables(database: &TestDatabase<'_>) -> Vec<String> {
    database
        .client()
        .unwrap()
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn up_applies_reports_and_fails_with_file_and_line() {
    let dir = three();
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let run = migrate(dir.path(), &[("DATABASE_URL", &url)], &["up"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("applied       1 a"), "{}", run.stdout);
    assert!(run.stdout.contains("applied       2 b"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("error: migration 3 (c) failed: relation \"nowhere\" does not exist"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--> migrations/003_c.sql:3:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("connecting to postgresql://postgres@127.0.0.1:"),
        "{}",
        run.stderr
    );

    let run = migrate(dir.path(), &[("DATABASE_URL", &url)], &["up", "--json"]);
    assert_eq!(run.code, 1);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "migration_failed");
    assert_eq!(error["sqlstate"], "42P01");
    assert_eq!(error["path"], "migrations/003_c.sql");
    assert_eq!(error["line"], 3);
}

#[test]
fn status_table_json_and_exit_code() {
    let dir = project(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("002_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let env = [("DATABASE_URL", url.as_str())];
    assert_eq!(migrate(dir.path(), &env, &["up", "--to", "1"]).code, 0);

    let run = migrate(dir.path(), &env, &["status"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .contains("a                                  applied"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("pending"), "{}", run.stdout);
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when not on a terminal"
    );

    let run = migrate(dir.path(), &env, &["status", "--json", "--exit-code"]);
    assert_eq!(run.code, 3, "pending migrations give exit code 3");
    let status = run.json();
    assert_eq!(status["pending"], 1);
    assert_eq!(status["migrations"][0]["state"], "applied");
    assert_eq!(status["migrations"][0]["applied_by"], "postgres");
    assert!(status["migrations"][0]["applied_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(status["migrations"][1]["state"], "pending");
    assert_eq!(status["invalid_indexes"], Value::Array(vec![]));

    assert_eq!(migrate(dir.path(), &env, &["up"]).code, 0);
    assert_eq!(
        migrate(dir.path(), &env, &["status", "--exit-code"]).code,
        0
    );
}

#[test]
fn down_redo_history_and_irreversible_refusal() {
    let dir = project(&[
        (
            "001_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        ("002_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let env = [("DATABASE_URL", url.as_str())];
    assert_eq!(migrate(dir.path(), &env, &["up"]).code, 0);

    let run = migrate(dir.path(), &env, &["down"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("migration 2 (b) cannot be reverted: it has no DOWN section"),
        "{}",
        run.stderr
    );
    let run = migrate(dir.path(), &env, &["redo", "1"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("reverted      1 a") && run.stdout.contains("applied       1 a"),
        "{}",
        run.stdout
    );

    let run = migrate(dir.path(), &env, &["history", "--json"]);
    let actions: Vec<String> = run.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {}", a["action"].as_str().unwrap(), a["version"]))
        .collect();
    assert_eq!(actions, ["apply 1", "apply 2", "rollback 1", "apply 1"]);
    let run = migrate(dir.path(), &env, &["history"]);
    assert!(run.stdout.contains("rollback"), "{}", run.stdout);
}

#[test]
fn plan_validate_and_dry_runs() {
    let dir = three();
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let env = [("DATABASE_URL", url.as_str())];

    let run = migrate(dir.path(), &env, &["plan", "--json"]);
    assert_eq!(run.code, 0);
    let versions: Vec<i64> = run.json()["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);

    let run = migrate(dir.path(), &env, &["up", "--dry-run"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("would apply      3 c"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("    INSERT INTO c SELECT * FROM nowhere;"),
        "the SQL is shown:\n{}",
        run.stdout
    );

    let run = migrate(dir.path(), &env, &["up", "--dry-run", "--execute"]);
    assert_eq!(run.code, 1, "a rehearsal that finds a failure exits 1");
    assert!(run.stdout.contains("would fail      3 c"), "{}", run.stdout);
    assert!(
        run.stdout.contains("--> migrations/003_c.sql:3:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("the database is unchanged"),
        "{}",
        run.stdout
    );
    assert!(
        tables(&database).is_empty(),
        "nothing left behind: {:?}",
        tables(&database)
    );

    let run = migrate(dir.path(), &env, &["validate"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("3 pending"), "{}", run.stdout);
}

#[test]
fn baseline_and_repair_from_the_command_line() {
    let dir = project(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("002_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    database
        .client()
        .unwrap()
        .batch_execute("CREATE TABLE a (id int)")
        .unwrap();
    let url = url(&database);
    let env = [("DATABASE_URL", url.as_str())];

    let run = migrate(
        dir.path(),
        &env,
        &["baseline", "1", "--reason", "built by hand", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["recorded"], serde_json::json!([1]));
    assert_eq!(migrate(dir.path(), &env, &["up"]).code, 0);

    std::fs::write(
        dir.path().join("migrations/001_a.sql"),
        "-- a comment\nCREATE TABLE a (id int);\n",
    )
    .unwrap();
    let run = migrate(dir.path(), &env, &["up"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("was changed after it was applied"),
        "{}",
        run.stderr
    );
    let accept = [
        "repair",
        "1",
        "--mark",
        "accept-checksum",
        "--reason",
        "comment only",
    ];
    let run = migrate(dir.path(), &env, &["validate", "--json"]);
    assert_eq!(run.code, 1, "validate refuses what up would refuse");
    assert_eq!(run.json()["error"]["kind"], "checksum_mismatch");
    let run = migrate(dir.path(), &env, &accept);
    assert_eq!(run.code, 2, "accepting a checksum needs --yes");
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
    let run = migrate(dir.path(), &env, &[&accept[..], &["--yes"]].concat());
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(migrate(dir.path(), &env, &["up"]).code, 0);
}

#[test]
fn production_refuses_destructive_commands_without_confirmation() {
    let dir = three();
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("MIGRATE_ENV", "production"),
    ];
    assert_eq!(migrate(dir.path(), &env, &["up", "--to", "2"]).code, 0);

    for args in [
        vec!["down"],
        vec!["redo", "2"],
        vec!["baseline", "2"],
        vec!["repair", "2", "--mark", "applied", "--reason", "x"],
    ] {
        let run = migrate(dir.path(), &env, &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.all());
        assert!(run.stderr.contains("in production without confirmation: pass --yes or set CONFIRM_PRODUCTION_MIGRATION=true"), "{}", run.stderr);
    }
    assert_eq!(tables(&database).len(), 4, "nothing was reverted");
    let confirmed = [
        ("DATABASE_URL", url.as_str()),
        ("MIGRATE_ENV", "production"),
        ("CONFIRM_PRODUCTION_MIGRATION", "true"),
    ];
    assert_eq!(migrate(dir.path(), &confirmed, &["down"]).code, 0);
    assert_eq!(migrate(dir.path(), &env, &["down", "--yes"]).code, 0);

    // `up` in production shows the plan before applying.
    let run = migrate(dir.path(), &env, &["up", "--to", "1"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.find("would apply").unwrap() < run.stdout.find("applied       1").unwrap(),
        "{}",
        run.stdout
    );
    let environments: Vec<String> = database
        .client()
        .unwrap()
        .query(
            "SELECT DISTINCT environment FROM schema_migrations_history",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(environments, ["production"]);
}

#[test]
fn each_configuration_source_connects() {
    let dir = project(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    let database = TestServer::shared().create_database().unwrap();
    let port = TestServer::shared().port().to_string();
    let name = database.name().to_owned();
    let database_url = url(&database);
    // (the source the binary should report, its variables, its arguments)
    type Source<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<String>);
    let sources: Vec<Source<'_>> = vec![
        (
            "--database-url",
            vec![],
            vec!["--database-url".into(), database_url.clone()],
        ),
        (
            "DATABASE_URL",
            vec![("DATABASE_URL", database_url.as_str())],
            vec![],
        ),
        (
            "DB_* variables",
            vec![
                ("DB_HOST", "127.0.0.1"),
                ("DB_PORT", &port),
                ("DB_NAME", &name),
                ("DB_USER", "postgres"),
                ("DB_PASSWORD", PASSWORD),
            ],
            vec![],
        ),
        (
            "PG* variables",
            vec![
                ("PGHOST", "127.0.0.1"),
                ("PGPORT", &port),
                ("PGDATABASE", &name),
                ("PGUSER", "postgres"),
                ("PGPASSWORD", PASSWORD),
            ],
            vec![],
        ),
    ];
    for (source, env, extra) in sources {
        let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
        args.extend(["status", "--json"]);
        let run = migrate(dir.path(), &env, &args);
        assert_eq!(run.code, 0, "{source}: {}", run.all());
        assert!(
            run.stderr.contains(&format!("(from {source})")),
            "{source}: {}",
            run.stderr
        );
    }
}

#[test]
fn usage_and_connection_errors_exit_2() {
    let dir = three();
    let run = migrate(dir.path(), &[], &["down"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no database configured"),
        "{}",
        run.stderr
    );
    let run = migrate(dir.path(), &[], &["frobnicate"]);
    assert_eq!(run.code, 2);
    let closed = "postgresql://postgres:Pa55-never-shown@127.0.0.1:1/none";
    let run = migrate(dir.path(), &[("DATABASE_URL", closed)], &["status"]);
    assert_eq!(run.code, 2, "{}", run.all());
}

#[test]
fn wait_keeps_trying_until_the_server_is_up() {
    let server = TestServer::start().unwrap();
    let url = server.url("postgres");
    server.stop().unwrap();
    let dir = project(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            server.restart().unwrap();
        });
        let run = migrate(
            dir.path(),
            &[("DATABASE_URL", &url)],
            &["up", "--wait", "30"],
        );
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(run.stdout.contains("applied"), "{}", run.stdout);
    });
}

#[test]
fn new_follows_the_directorys_numbering() {
    let sequential = project(&[("001_a.sql", "SELECT 1;\n"), ("002_b.sql", "SELECT 1;\n")]);
    let run = migrate(sequential.path(), &[], &["new", "add_users"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout.trim(), "created migrations/003_add_users.sql");
    let text =
        std::fs::read_to_string(sequential.path().join("migrations/003_add_users.sql")).unwrap();
    assert!(
        text.contains("-- migrate:up\n") && text.contains("-- migrate:down\n"),
        "{text}"
    );
    // A second one right after, while the first is still empty.
    let run = migrate(sequential.path(), &[], &["new", "add_roles", "--json"]);
    assert_eq!(run.json()["created"][0], "migrations/004_add_roles.sql");

    let timestamped = project(&[("20241201000001_a.sql", "SELECT 1;\n")]);
    let run = migrate(timestamped.path(), &[], &["new", "b"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let name = run.stdout.trim().rsplit('/').next().unwrap().to_owned();
    assert_eq!(name.len(), "20261121120000_b.sql".len(), "{name}");
    assert!(name.starts_with("20") && name.ends_with("_b.sql"), "{name}");

    let run = migrate(sequential.path(), &[], &["new", "bad-name"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("not a valid migration name"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_migration_files_are_reported_with_file_and_line() {
    let dir = project(&[(
        "001_a.sql",
        "-- migrate:up\nCREATE INDEX CONCURRENTLY i ON t (x);\n",
    )]);
    let run = migrate(
        dir.path(),
        &[("DATABASE_URL", "postgresql://x@127.0.0.1:1/y")],
        &["status"],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("migrations/001_a.sql:2: `CREATE INDEX CONCURRENTLY` cannot run inside a transaction block"), "{}", run.stderr);
}

const NO_DATABASE: &str = "error: no database configured
   = note: looked for --database-url, DATABASE_URL, DB_HOST or DB_NAME (with DB_PORT, DB_USER, DB_PASSWORD), and libpq's PGHOST, PGPORT, PGDATABASE or PGUSER (with PGPASSWORD, PGSSLMODE, PGOPTIONS): none is set
   = help: name the database: `--database-url postgresql://USER:PASSWORD@HOST:PORT/DATABASE`, or set DATABASE_URL to that URL
   = help: to try the migrations on a throwaway PostgreSQL server that is removed afterwards, pass --throwaway
";

/// No database configured is an error that says where it looked, never a green run on a
/// server that is thrown away; each of its `help:` lines, run as written, works.
#[test]
fn without_a_database_commands_refuse_and_each_help_line_works() {
    let dir = project(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    for command in [&["up"][..], &["status"], &["history"], &["down"], &["plan"]] {
        let run = migrate(dir.path(), &[], command);
        assert_eq!(run.code, 2, "{command:?}: {}", run.all());
        assert_eq!(run.stderr, NO_DATABASE, "{command:?}");
        assert_eq!(run.stdout, "", "{command:?}");
    }
    let run = migrate(dir.path(), &[("MIGRATE_ENV", "production")], &["up"]);
    assert_eq!((run.code, run.stderr.as_str()), (2, NO_DATABASE));
    let error = &migrate(dir.path(), &[], &["up", "--json"]).json()["error"];
    assert_eq!(error["kind"], "no_database");
    assert_eq!(error["message"], NO_DATABASE.trim_end());

    // help: --database-url URL, or DATABASE_URL set to it.
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let run = migrate(dir.path(), &[], &["--database-url", &url, "up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("applied       1 a"), "{}", run.stdout);
    assert_eq!(tables(&database)[0], "a");
    let other = TestServer::shared().create_database().unwrap();
    let other_url = self::url(&other);
    let run = migrate(dir.path(), &[("DATABASE_URL", &other_url)], &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("applied       1 a"), "{}", run.stdout);
    assert_eq!(tables(&other)[0], "a");

    // help: --throwaway, which says what it does.
    let run = migrate(dir.path(), &[], &["up", "--throwaway"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.starts_with(
            "--throwaway: using a throwaway PostgreSQL server, removed when this command ends\n"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("applied       1 a"), "{}", run.stdout);
    let run = migrate(dir.path(), &[], &["--throwaway", "status"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("pending"), "{}", run.stdout);
}

/// `--throwaway` is refused in production and beside an explicit URL; a configured database
/// it leaves unused is named.
#[test]
fn throwaway_is_refused_in_production_and_beside_a_url() {
    let dir = project(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    let production = [("MIGRATE_ENV", "production")];
    let run = migrate(dir.path(), &production, &["up", "--throwaway"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(
        run.stderr,
        "error: --throwaway applies the migrations to a server that is removed afterwards; refusing it in production: name the production database (--database-url or DATABASE_URL) instead\n"
    );
    // ... as it says: the production database by URL.
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let run = migrate(
        dir.path(),
        &[("MIGRATE_ENV", "production"), ("DATABASE_URL", &url)],
        &["up"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(tables(&database)[0], "a");

    let run = migrate(
        dir.path(),
        &[],
        &["up", "--throwaway", "--database-url", &url],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("the argument '--throwaway' cannot be used with '--database-url <URL>'"),
        "{}",
        run.stderr
    );
    let run = migrate(
        dir.path(),
        &[("DATABASE_URL", &url)],
        &["status", "--throwaway"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.starts_with("--throwaway: using a throwaway PostgreSQL server, removed when this command ends (DATABASE_URL is not used)\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("pending"),
        "the throwaway server is empty: {}",
        run.stdout
    );
}

/// A `DATABASE_URL` that is set is used or refused: empty or not UTF-8, it is an error naming
/// it, and the `PG*` variables also set are not quietly used instead. Each help, followed.
#[test]
fn an_empty_or_non_utf8_database_url_is_an_error_not_a_fallback() {
    use std::os::unix::ffi::OsStrExt;

    let dir = project(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    let server = TestServer::shared();
    let database = server.create_database().unwrap();
    let port = server.port().to_string();
    let pg = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGDATABASE", database.name()),
        ("PGUSER", "postgres"),
    ];

    let mut empty = pg.to_vec();
    empty.push(("DATABASE_URL", ""));
    let run = migrate(dir.path(), &empty, &["up"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(
        run.stderr,
        "error: DATABASE_URL is set but empty\n   = help: give it a value, or unset it (`unset DATABASE_URL`) to use the next source\n"
    );
    assert_eq!(tables(&database), Vec::<String>::new(), "nothing ran");
    // help: unset it, and the next source (here the PG* variables) is used.
    let run = migrate(dir.path(), &pg, &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("(from PG* variables)"),
        "{}",
        run.stderr
    );
    assert_eq!(tables(&database)[0], "a");

    // A Latin-1 `é` where the URL needs UTF-8.
    let mut client = server.connect("postgres").unwrap();
    client.batch_execute("CREATE DATABASE \"café\"").unwrap();
    let mut bytes = format!("postgresql://postgres@127.0.0.1:{port}/caf").into_bytes();
    bytes.push(0xe9);
    let run = Run::of(
        &binary()
            .current_dir(dir.path())
            .envs(pg)
            .env("DATABASE_URL", std::ffi::OsStr::from_bytes(&bytes))
            .arg("up")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(
        run.stderr,
        format!(
            "error: DATABASE_URL is not valid UTF-8 (at byte {})\n   = help: set it to UTF-8 text; in a URL, write other bytes percent-encoded (%XX)\n",
            bytes.len() - 1
        )
    );
    // help: UTF-8, percent-encoded in the URL.
    let encoded = format!("postgresql://postgres@127.0.0.1:{port}/caf%C3%A9");
    let run = migrate(dir.path(), &[("DATABASE_URL", &encoded)], &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("127.0.0.1:{port}/café (from DATABASE_URL)")),
        "{}",
        run.stderr
    );
    let mut cafe = server.connect("café").unwrap();
    assert_eq!(
        cafe.query_one("SELECT count(*) FROM a", &[])
            .unwrap()
            .get::<_, i64>(0),
        0
    );
}

/// The command line's own variables: set but empty is refused too (clap names the option
/// each one feeds), as the connection variables are.
#[test]
fn empty_migrate_variables_are_refused() {
    let dir = three_good();
    for (variable, option) in [
        ("MIGRATE_ENV", "--env <NAME>"),
        ("MIGRATE_APPLIED_BY", "--applied-by <NAME>"),
        ("MIGRATIONS_DIR", "--dir <DIR>"),
        ("MIGRATE_LOCK_SCOPE", "--lock-scope <SCOPE>"),
    ] {
        let run = migrate(dir.path(), &[(variable, "")], &["up", "--throwaway"]);
        assert_eq!(run.code, 2, "{variable}: {}", run.all());
        assert!(
            run.stderr.starts_with(&format!(
                "error: a value is required for '{option}' but none was supplied"
            )),
            "{variable}: {}",
            run.stderr
        );
    }
}

/// libpq's `PGOPTIONS` (and `options` in the URL) reach the server: the migration's session
/// has the settings they give, in both the `-c name=value` and `--name=value` forms.
#[test]
fn pgoptions_and_url_options_reach_the_migrations_session() {
    let dir = project(&[(
        "001_seen.sql",
        "CREATE TABLE seen AS SELECT current_setting('work_mem') AS work_mem, current_setting('statement_timeout') AS statement_timeout;\n",
    )]);
    let seen = |database: &TestDatabase<'_>| -> (String, String) {
        let row = database
            .client()
            .unwrap()
            .query_one("SELECT work_mem, statement_timeout FROM seen", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let run = migrate(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("PGOPTIONS", "-c work_mem=1234kB -c statement_timeout=5s"),
        ],
        &["up"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(seen(&database), ("1234kB".to_owned(), "5s".to_owned()));

    let database = TestServer::shared().create_database().unwrap();
    let with_options = format!("{}?options=--work_mem%3D2345kB", self::url(&database));
    let run = migrate(
        dir.path(),
        &[
            ("DATABASE_URL", &with_options),
            ("PGOPTIONS", "-c work_mem=1kB"),
        ],
        &["up"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        seen(&database).0,
        "2345kB",
        "the URL's options win over PGOPTIONS"
    );
}

/// Standard error without the `connecting to ...` line it starts with.
fn after_connecting(stderr: &str) -> &str {
    match stderr.split_once('\n') {
        Some((first, rest)) if first.starts_with("connecting to ") => rest,
        _ => stderr,
    }
}

/// The `migrate ...` commands a message's `help:` lines give, as written (`VERSION` replaced).
fn suggested_commands(stderr: &str, version: &str) -> Vec<Vec<String>> {
    let help = &stderr[stderr.find("= help:").expect("a help line")..];
    let mut commands: Vec<String> = help
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("migrate "))
        .map(str::to_owned)
        .collect();
    commands.extend(
        help.split('`')
            .skip(1)
            .step_by(2)
            .filter(|quoted| quoted.starts_with("migrate "))
            .map(str::to_owned),
    );
    commands
        .iter()
        .map(|command| {
            command
                .split_whitespace()
                .skip(1)
                .map(|word| word.replace("VERSION", version))
                .collect()
        })
        .collect()
}

/// Another tool's `schema_migrations` under our default name: `up`, `status` and `history`
/// say which tool it looks like instead of `column "name" does not exist` or an empty history,
/// and the commands their help gives, run as written, import its history and apply the rest.
#[test]
fn another_tools_schema_migrations_is_recognised_and_its_help_gets_past_it() {
    let dir = three_good();
    // (what the other tool left, what the first line says, the columns line)
    let cases = [
        (
            "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY); INSERT INTO schema_migrations VALUES ('001'), ('002');",
            "it looks like dbmate's",
            "version character varying(128)",
        ),
        (
            "CREATE TABLE schema_migrations (version varchar NOT NULL PRIMARY KEY); CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar); INSERT INTO schema_migrations VALUES ('1'), ('2');",
            "it looks like Rails's",
            "version character varying",
        ),
        (
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (2, false);",
            "it looks like golang-migrate's",
            "version bigint, dirty boolean",
        ),
        (
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, inserted_at timestamp(0)); INSERT INTO schema_migrations VALUES (1, now()), (2, now());",
            "",
            "version bigint, inserted_at timestamp(0) without time zone",
        ),
    ];
    for (left, looks_like, columns) in cases {
        let database = TestServer::shared().create_database().unwrap();
        let mut client = database.client().unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE a (id int); CREATE TABLE b (id int); {left}"
            ))
            .unwrap();
        let env = [("DATABASE_URL", url(&database))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let first = format!(
            "error: public.schema_migrations is not this runtime's history table{}{looks_like}\n   = columns: {columns}\n   = note: nothing was run; this runtime keeps its history in a table of its own, and `schema_migrations` is taken\n",
            if looks_like.is_empty() { "" } else { ": " }
        );
        let mut help = String::new();
        for command in [&["up"][..], &["status"], &["history"], &["down"], &["plan"]] {
            let run = migrate(dir.path(), &env, command);
            assert_eq!(run.code, 1, "{command:?}: {}", run.all());
            let error = after_connecting(&run.stderr);
            assert!(error.starts_with(&first), "{command:?}: {}", run.stderr);
            assert_eq!(run.stdout, "", "{command:?}");
            help = error.to_owned();
        }
        let json = migrate(dir.path(), &env, &["up", "--json"]).json();
        assert_eq!(json["error"]["kind"], "foreign_history_table");
        assert_eq!(json["error"]["table"], "public.schema_migrations");
        assert_eq!(
            json["error"]["columns"][0]
                .as_str()
                .map(|c| c.starts_with("version ")),
            Some(true)
        );
        assert_eq!(
            tables(&database),
            ["a", "b", "schema_migrations"]
                .into_iter()
                .chain(
                    looks_like
                        .contains("Rails")
                        .then_some("ar_internal_metadata")
                )
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>(),
            "nothing was created"
        );

        // Run what the help says, as written.
        let commands = suggested_commands(&help, "2");
        assert_eq!(commands.len(), 2, "{help}");
        for command in &commands {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let run = migrate(dir.path(), &env, &args);
            assert_eq!(run.code, 0, "{args:?}: {}", run.all());
        }
        let status = migrate(
            dir.path(),
            &env,
            &["--history-table", "migrate_history", "status", "--json"],
        )
        .json();
        let states: Vec<&str> = status["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["applied"; 3], "{help}");
        let actions: Vec<(i64, String)> = client
            .query(
                "SELECT version, action FROM migrate_history_history ORDER BY id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        assert_eq!(
            actions,
            [
                (1, "baseline".into()),
                (2, "baseline".into()),
                (3, "apply".into())
            ],
            "{help}"
        );
        assert!(tables(&database).contains(&"c".to_owned()));
        // The other tool's table is left as it was.
        let rows: i64 = client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, if looks_like.contains("golang") { 1 } else { 2 });
    }
}

/// golang-migrate's `dirty` flag: the import is refused saying so, and once the flag is
/// cleared as the help says, it goes through.
#[test]
fn a_dirty_golang_migrate_history_is_not_imported_until_cleared() {
    let dir = three_good();
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute(
            "CREATE TABLE a (id int); CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (2, true);",
        )
        .unwrap();
    let url = url(&database);
    let env = [("DATABASE_URL", url.as_str())];
    let baseline = [
        "--history-table",
        "migrate_history",
        "baseline",
        "--from",
        "golang-migrate",
    ];
    let run = migrate(dir.path(), &env, &baseline);
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(
        after_connecting(&run.stderr),
        "error: golang-migrate's schema_migrations marks version 2 dirty: it failed part-way, so what it applied is not known; nothing was imported\n   = help: finish or undo version 2 by hand, then clear the flag as golang-migrate does (`migrate -database URL force 2`, or `UPDATE schema_migrations SET dirty = false`), and import again\n"
    );
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM migrate_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(recorded, 0);
    // Finish version 2 by hand, clear the flag, import again.
    client
        .batch_execute("CREATE TABLE b (id int); UPDATE schema_migrations SET dirty = false")
        .unwrap();
    let run = migrate(dir.path(), &env, &baseline);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.stdout,
        "recorded 2 migration(s) as applied without running them: [1, 2]\n"
    );
    let run = migrate(
        dir.path(),
        &env,
        &["--history-table", "migrate_history", "up"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("applied       3 c"), "{}", run.stdout);
}

/// A read-only database (here by `default_transaction_read_only`, as on a hot standby every
/// transaction is): `up` says to connect to the primary, and the way its help gives works.
#[test]
fn a_read_only_database_is_explained_and_its_help_works() {
    let dir = three_good();
    let database = TestServer::shared().create_database().unwrap();
    TestServer::shared()
        .connect("postgres")
        .unwrap()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            database.name()
        ))
        .unwrap();
    let url = url(&database);
    let run = migrate(dir.path(), &[("DATABASE_URL", &url)], &["up"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(
        after_connecting(&run.stderr),
        "error: database error while taking the migration lock and creating the history tables: ERROR: cannot execute CREATE SCHEMA in a read-only transaction (SQLSTATE 25006)\n   = help: this server only accepts reads (a hot standby, or `default_transaction_read_only` is on): connect to the primary; if this database is read-only by that setting, it must be off for the migration (PGOPTIONS='-c default_transaction_read_only=off' turns it off for this connection only)\n"
    );
    assert_eq!(tables(&database), Vec::<String>::new());
    // Reading still works there.
    let run = migrate(dir.path(), &[("DATABASE_URL", &url)], &["status"]);
    assert_eq!(run.code, 0, "{}", run.all());

    let run = migrate(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("PGOPTIONS", "-c default_transaction_read_only=off"),
        ],
        &["up"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("3 migration(s) applied"),
        "{}",
        run.stdout
    );
}

/// `down --all` reverts everything, diesel's version 0 too; `--to` takes a negative version.
#[test]
fn down_all_and_a_negative_to_revert_everything() {
    let dir = project(&[
        (
            "00000000000000_diesel_initial_setup.sql",
            "-- migrate:up\nCREATE TABLE setup (id int);\n-- migrate:down\nDROP TABLE setup;\n",
        ),
        (
            "001_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        (
            "002_b.sql",
            "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n",
        ),
    ]);
    for down in [&["down", "--all"][..], &["down", "--to", "-1"][..]] {
        let database = TestServer::shared().create_database().unwrap();
        let url = url(&database);
        let up = migrate(dir.path(), &[("DATABASE_URL", &url)], &["up"]);
        assert_eq!(up.code, 0, "{}", up.all());
        assert_eq!(tables(&database).len(), 5, "{:?}", tables(&database));
        let run = migrate(dir.path(), &[("DATABASE_URL", &url)], down);
        assert_eq!(run.code, 0, "{down:?}: {}", run.all());
        assert!(
            run.stdout.contains("reverted      0 diesel_initial_setup"),
            "{}",
            run.stdout
        );
        assert_eq!(
            tables(&database),
            ["schema_migrations", "schema_migrations_history"],
            "{down:?}"
        );
    }
}

/// The help of a migration that would drop our history table, run as it says.
#[test]
fn history_table_elsewhere_lets_a_migration_drop_the_old_tools_table() {
    let dir = project(&[
        ("001_t.sql", "CREATE TABLE t (id int);\n"),
        (
            "002_forget_old_tool.sql",
            "DROP TABLE IF EXISTS schema_migrations;\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let refused = migrate(dir.path(), &[("DATABASE_URL", &url)], &["up"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("`migrate --history-table migrate_history up`"),
        "{}",
        refused.stderr
    );
    let run = migrate(
        dir.path(),
        &[("DATABASE_URL", &url)],
        &["--history-table", "migrate_history", "up"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("applied       2 forget_old_tool"),
        "{}",
        run.stdout
    );
    assert!(tables(&database).contains(&"migrate_history".to_owned()));
}

/// A comment-only DOWN makes a migration irreversible: `down` refuses before reverting
/// anything, and both ways out its help names work: adding a DOWN section (the checksum does
/// not change), or `down --through-irreversible`.
#[test]
fn down_through_an_irreversible_migration_does_what_the_help_says() {
    let files = |second_down: &str| {
        [
            (
                "001_a.sql",
                "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n"
                    .to_owned(),
            ),
            (
                "002_b.sql",
                format!("-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\n{second_down}"),
            ),
            (
                "003_c.sql",
                "-- migrate:up\nCREATE TABLE c (id int);\n-- migrate:down\nDROP TABLE c;\n"
                    .to_owned(),
            ),
        ]
    };
    let irreversible = files("-- Not reversible\n");
    let borrowed: Vec<(&str, &str)> = irreversible.iter().map(|(f, s)| (*f, s.as_str())).collect();
    let dir = project(&borrowed);
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    assert_eq!(
        migrate(dir.path(), &[("DATABASE_URL", &url)], &["up"]).code,
        0
    );

    let refused = migrate(dir.path(), &[("DATABASE_URL", &url)], &["down", "--all"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains(
            "migration 2 (b) cannot be reverted: it has no DOWN section; nothing was reverted"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("`migrate down --through-irreversible`"),
        "{}",
        refused.stderr
    );
    assert!(
        tables(&database).contains(&"c".to_owned()),
        "nothing was reverted"
    );

    // The second way out: go through it.
    let through = migrate(
        dir.path(),
        &[("DATABASE_URL", &url)],
        &["down", "--all", "--through-irreversible"],
    );
    assert_eq!(through.code, 0, "{}", through.all());
    assert_eq!(
        tables(&database),
        ["b", "schema_migrations", "schema_migrations_history"],
        "002's table stays: nothing of its SQL ran"
    );
    let history = migrate(
        dir.path(),
        &[("DATABASE_URL", &url)],
        &["history", "--json"],
    );
    let actions: Value = serde_json::from_str(&history.stdout).unwrap();
    let forgotten = actions["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "rollback" && a["version"] == 2)
        .expect("a rollback row for 2");
    assert!(
        forgotten["note"]
            .as_str()
            .unwrap()
            .starts_with("no DOWN section: recorded as rolled back without running any SQL"),
        "{forgotten}"
    );

    // The first way out: add a DOWN section; the checksum does not change, so the applied
    // migration can be reverted by the edited file.
    let database = TestServer::shared().create_database().unwrap();
    let url = self::url(&database);
    assert_eq!(
        migrate(dir.path(), &[("DATABASE_URL", &url)], &["up"]).code,
        0
    );
    std::fs::write(
        dir.path().join("migrations/002_b.sql"),
        &files("DROP TABLE b;\n")[1].1,
    )
    .unwrap();
    let down = migrate(dir.path(), &[("DATABASE_URL", &url)], &["down", "--all"]);
    assert_eq!(down.code, 0, "{}", down.all());
    assert_eq!(
        tables(&database),
        ["schema_migrations", "schema_migrations_history"]
    );
}

/// `verify` fails on a DOWN that gives the columns back in another order, and
/// `--allow-column-order` (which its message names) accepts it.
#[test]
fn verify_allow_column_order_accepts_a_reordering_down() {
    let dir = project(&[
        ("001_t.sql", "-- migrate:up\nCREATE TABLE t (id int, a int, b int);\n-- migrate:down\nDROP TABLE t;\n"),
        ("002_drop_a.sql", "-- migrate:up\nALTER TABLE t DROP COLUMN a;\n-- migrate:down\nALTER TABLE t ADD COLUMN a int;\n"),
    ]);
    let failed = migrate(dir.path(), &[], &["verify"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(
        failed.stdout.contains("--allow-column-order accepts it"),
        "{}",
        failed.stdout
    );
    let accepted = migrate(dir.path(), &[], &["verify", "--allow-column-order"]);
    assert_eq!(accepted.code, 0, "{}", accepted.all());
    assert!(
        accepted.stdout.contains(
            "DOWN restores the columns in another order (migrations/002_drop_a.sql), accepted"
        ),
        "{}",
        accepted.stdout
    );
}

/// What was inferred is never hidden: `plan`, `status --json` and `lint` say it.
#[test]
fn plan_status_and_lint_say_what_was_inferred() {
    let dir = project(&[
        (
            "1_create_t.up.sql",
            "CREATE TABLE t (id int, email text);\n",
        ),
        (
            "2_index_email.up.sql",
            "CREATE INDEX CONCURRENTLY t_email_idx ON t (email);\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let why = "inferred: no transaction (`CREATE INDEX CONCURRENTLY` on line 1 cannot run inside a transaction block)";

    let plan = migrate(dir.path(), &[("DATABASE_URL", &url)], &["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout.contains(&format!(
            "index_email                              (statement by statement; {why})"
        )),
        "{}",
        plan.stdout
    );
    let plan_json: Value = serde_json::from_str(
        &migrate(dir.path(), &[("DATABASE_URL", &url)], &["plan", "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(
        plan_json["pending"][1]["inferred"],
        why.trim_start_matches("inferred: ")
    );
    assert_eq!(plan_json["pending"][0]["inferred"], Value::Null);

    let status: Value = serde_json::from_str(
        &migrate(dir.path(), &[("DATABASE_URL", &url)], &["status", "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(
        status["migrations"][1]["inferred"],
        why.trim_start_matches("inferred: ")
    );

    let lint = migrate(dir.path(), &[], &["lint"]);
    assert!(
        lint.stdout
            .contains(&format!("note: migrations/2_index_email.up.sql: {why}")),
        "{}",
        lint.stdout
    );
    let lint_json: Value =
        serde_json::from_str(&migrate(dir.path(), &[], &["lint", "--json"]).stdout).unwrap();
    assert_eq!(
        lint_json["inferred"][0]["path"],
        "migrations/2_index_email.up.sql"
    );

    let up = migrate(dir.path(), &[("DATABASE_URL", &url)], &["up"]);
    assert_eq!(up.code, 0, "{}", up.all());
}

#[test]
fn a_migration_blocked_by_a_reader_names_it_and_the_helps_budget_waits_it_out() {
    let dir = project(&[
        ("001_orders.sql", "CREATE TABLE orders (id int);\n"),
        (
            "002_add_note.sql",
            "ALTER TABLE orders ADD COLUMN note text;\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let url = url(&database);
    let env = [("DATABASE_URL", url.as_str())];
    let run = migrate(dir.path(), &env, &["up", "--to", "1"]);
    assert_eq!(run.code, 0, "{}", run.all());

    let mut reader = database
        .config()
        .application_name("nightly-report")
        .connect(postgres::NoTls)
        .unwrap();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM orders;")
        .unwrap();
    let run = migrate(
        dir.path(),
        &env,
        &["--lock-timeout", "100ms", "--lock-retry-budget", "1s", "up"],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("error: gave up applying migration 2 (add_note) after "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("(application `nightly-report`, user postgres, idle in transaction, for "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("= help: or keep retrying for longer: `--lock-retry-budget 10min`"),
        "{}",
        run.stderr
    );
    // No retry is silent: each wait is a line on stderr.
    assert!(
        run.stderr.contains("waiting: applying migration 2 (add_note) could not get a lock in time (canceling statement due to lock timeout); attempt 2 in "),
        "{}",
        run.stderr
    );
    let json = migrate(
        dir.path(),
        &env,
        &[
            "--lock-timeout",
            "100ms",
            "--lock-retry-budget",
            "300ms",
            "up",
            "--json",
        ],
    );
    assert_eq!(
        json.json()["error"]["kind"],
        "lock_not_available",
        "{}",
        json.all()
    );

    // What the help says: a budget longer than the reader's hold (it ends after 1.5 s).
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1_500));
        reader.batch_execute("COMMIT").unwrap();
    });
    let run = migrate(
        dir.path(),
        &env,
        &[
            "--lock-timeout",
            "100ms",
            "--lock-retry-budget",
            "10min",
            "up",
        ],
    );
    release.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("applied       2 add_note"),
        "{}",
        run.stdout
    );
}
