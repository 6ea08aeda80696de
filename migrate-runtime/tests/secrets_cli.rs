//! The `migrate` binary against servers that demand a password: the password never shows in
//! any output (text, `--json`, `--verbose`, errors) nor in the history, every command works as
//! a database owner who is not a superuser, and TLS (`require`, `verify-full`) works against a
//! certificate made here, with `verify-full` refusing a host name the certificate does not name.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;
use migrate_test_support::files::project;
use migrate_test_support::passwords::{self, percent_encode, require_passwords};
use migrate_test_support::process::{spawn, Run};
use support::binary;

/// The role's password, with spaces, a quote and URL delimiters so that each source must carry
/// it intact. Output is checked for its distinctive start, which neither percent-encoding nor
/// quoting changes.
const SECRET: &str = "Qm7-correct-horse q'@:/?&%=";
const SECRET_CORE: &str = "Qm7-correct-horse";
/// A wrong password, which must not show either.
const WRONG: &str = "Wr0ng-battery-41";
/// A database owner that is not a superuser and may not create databases or roles.
const ROLE: &str = "app_owner";

/// Runs the binary in `dir` with exactly `env` among the variables it reads (and `RUST_LOG` at
/// its most talkative, so any log output would show too), and checks that no password shows.
fn migrate(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Run {
    let output = binary()
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "trace")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run::of(&output);
    assert_secret_free(&format!("migrate {args:?}"), &run.all());
    run
}

fn assert_secret_free(what: &str, text: &str) {
    passwords::assert_secret_free(what, text, &[SECRET_CORE, WRONG]);
}

fn url(port: u16, database: &str, password: &str, query: &str) -> String {
    format!(
        "postgresql://{ROLE}:{}@127.0.0.1:{port}/{database}{query}",
        percent_encode(password)
    )
}

/// Creates [`ROLE`] with [`SECRET`] and a database it owns for each of `databases`, then makes
/// TCP connections need that password (`hba` is the TCP lines of `pg_hba.conf`); the Unix
/// socket stays trusted for the tests' own checks.
fn require_role_password(server: &TestServer, hba: &str, databases: &[&str]) {
    let mut admin = server.connect("postgres").unwrap();
    require_passwords(&mut admin, server.port(), ROLE, SECRET, hba, databases);
}

/// One server for this file's password tests, with a database per test.
fn password_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = TestServer::start().unwrap();
        require_role_password(
            &server,
            "host all all 127.0.0.1/32 scram-sha-256",
            &["secrets", "owner"],
        );
        server
    })
}

/// Every way to give the binary a password: (the source it reports, arguments, environment).
type Source = (&'static str, Vec<String>, Vec<(&'static str, String)>);

fn sources(port: u16, database: &str, password: &str) -> Vec<Source> {
    let conninfo_password = password.replace('\\', "\\\\").replace('\'', "\\'");
    let without_password = format!("postgresql://{ROLE}@127.0.0.1:{port}/{database}");
    vec![
        (
            "--database-url",
            vec!["--database-url".into(), url(port, database, password, "")],
            vec![],
        ),
        (
            "DATABASE_URL",
            vec![],
            vec![("DATABASE_URL", url(port, database, password, ""))],
        ),
        (
            "DATABASE_URL",
            vec![],
            vec![(
                "DATABASE_URL",
                format!("{without_password}?password={}", percent_encode(password)),
            )],
        ),
        (
            "DATABASE_URL",
            vec![],
            vec![(
                "DATABASE_URL",
                format!("host=127.0.0.1 port={port} dbname={database} user={ROLE} password='{conninfo_password}'"),
            )],
        ),
        (
            "DATABASE_URL",
            vec![],
            vec![
                ("DATABASE_URL", without_password.clone()),
                ("PGPASSWORD", password.to_owned()),
            ],
        ),
        (
            "DB_* variables",
            vec![],
            vec![
                ("DB_HOST", "127.0.0.1".to_owned()),
                ("DB_PORT", port.to_string()),
                ("DB_NAME", database.to_owned()),
                ("DB_USER", ROLE.to_owned()),
                ("DB_PASSWORD", password.to_owned()),
            ],
        ),
        (
            "PG* variables",
            vec![],
            vec![
                ("PGHOST", "127.0.0.1".to_owned()),
                ("PGPORT", port.to_string()),
                ("PGDATABASE", database.to_owned()),
                ("PGUSER", ROLE.to_owned()),
                ("PGPASSWORD", password.to_owned()),
            ],
        ),
    ]
}

fn with_args<'a>(extra: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    extra
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect()
}

#[test]
fn the_password_shows_in_no_output_error_or_history_row() {
    let server = password_server();
    let port = server.port();
    let dir = project(&[
        (
            "001_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        (
            "002_b.sql",
            "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n",
        ),
        (
            "003_fails.sql",
            "-- migrate:up\nINSERT INTO missing VALUES (1);\n",
        ),
    ]);
    let path = dir.path();

    // Each source: the password gets through (the server demands it), and never shows.
    for (source, args, env) in sources(port, "secrets", SECRET) {
        let run = migrate(
            path,
            &env,
            &with_args(&args, &["--verbose", "status", "--json"]),
        );
        assert_eq!(run.code, 0, "{source} {env:?}: {}", run.all());
        assert!(
            run.stderr.contains(&format!(
                "connecting to postgresql://{ROLE}@127.0.0.1:{port}/secrets"
            )) && run.stderr.contains(&format!("(from {source})")),
            "{}",
            run.stderr
        );
    }

    // Every command, in text, --json and --verbose, through a URL with the password.
    let env = [("DATABASE_URL", url(port, "secrets", SECRET, ""))];
    let commands: [&[&str]; 13] = [
        &["up"],
        &["up", "--json"],
        &["--verbose", "up"],
        &["up", "--dry-run", "--execute", "--json"],
        &["plan", "--verbose", "--json"],
        &["validate"],
        &["status"],
        &["--verbose", "status", "--json"],
        &["down", "--verbose"],
        &["redo", "1", "--json"],
        &["history"],
        &["history", "--json", "--verbose"],
        &[
            "repair",
            "3",
            "--mark",
            "applied",
            "--reason",
            "no such row",
            "--json",
        ],
    ];
    let mut codes = Vec::new();
    for args in commands {
        codes.push(migrate(path, &env, args).code);
    }
    // up fails at 3 (exit 1) and the rest runs; the repair is refused (nothing recorded for 3).
    assert_eq!(codes, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let run = migrate(path, &env, &["up", "--json"]);
    assert_eq!(run.json()["error"]["sqlstate"], "42P01", "{}", run.all());

    // The history names the role, and holds the password nowhere.
    let mut admin = server.connect("secrets").unwrap();
    passwords::assert_history_names_only(&mut admin, ROLE, &[SECRET_CORE, WRONG]);
}

#[test]
fn connection_failures_explain_themselves_without_the_password() {
    let server = password_server();
    let port = server.port();
    let dir = project(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    let path = dir.path();

    // A wrong password, through each source: exit 2, the server's reason, where it came from.
    for (source, args, env) in sources(port, "secrets", WRONG) {
        let run = migrate(path, &env, &with_args(&args, &["status"]));
        assert_eq!(run.code, 2, "{source}: {}", run.all());
        let expected = format!(
            "error: cannot connect to postgresql://{ROLE}@127.0.0.1:{port}/secrets (settings from {source}): FATAL: password authentication failed for user \"{ROLE}\" (SQLSTATE 28P01)\n   = help: check the user name and password (from {source})\n"
        );
        assert!(run.stderr.ends_with(&expected), "{source}:\n{}", run.stderr);
        let run = migrate(path, &env, &with_args(&args, &["up", "--json"]));
        assert_eq!(run.code, 2);
        assert_eq!(run.json()["error"]["kind"], "usage");
    }
    // No password at all, where the server asks for one.
    let run = migrate(
        path,
        &[(
            "DATABASE_URL",
            format!("postgresql://{ROLE}@127.0.0.1:{port}/secrets"),
        )],
        &["status"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.ends_with(
            "(settings from DATABASE_URL): invalid configuration: password missing\n   = help: the server asks for a password and none was given (settings from DATABASE_URL): add it (postgresql://USER:PASSWORD@HOST/DATABASE), or set PGPASSWORD\n"
        ),
        "{}",
        run.stderr
    );

    // Nothing listening, at once and after --wait.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [("DATABASE_URL", url(closed, "secrets", SECRET, ""))];
    let run = migrate(path, &env, &["up"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("Connection refused")
            && run
                .stderr
                .contains("is the server running, and listening on that host and port?"),
        "{}",
        run.stderr
    );
    let run = migrate(path, &env, &["up", "--wait", "1", "--json"]);
    assert_eq!(run.code, 2);
    let message = run.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&format!(
            "gave up connecting to postgresql://{ROLE}@127.0.0.1:{closed}/secrets (settings from DATABASE_URL) after waiting 1 s"
        )),
        "{message}"
    );

    // A string that cannot be read is echoed with the password masked.
    let bad = url(port, "secrets", SECRET, "").replace(&format!(":{port}/"), ":notaport/");
    let run = migrate(path, &[], &["--database-url", &bad, "status"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(&format!(
            "= value: postgresql://{ROLE}:***@127.0.0.1:notaport/secrets"
        )),
        "{}",
        run.stderr
    );
}

/// Versions in `status --json` with their states.
fn states(run: &Run) -> Vec<String> {
    run.json()["migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", run.all()))
        .iter()
        .map(|m| format!("{} {}", m["version"], m["state"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_database_owner_who_is_not_a_superuser_can_run_every_command() {
    let server = password_server();
    let port = server.port();
    let mut admin = server.connect("owner").unwrap();
    let role = admin
        .query_one(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&ROLE],
        )
        .unwrap();
    let privileges: (bool, bool, bool, bool) = (role.get(0), role.get(1), role.get(2), role.get(3));
    assert_eq!(privileges, (false, false, false, false));

    let dir = project(&[
        (
            "001_users.sql",
            "-- migrate:up\nCREATE TABLE users (id int PRIMARY KEY, email text);\n-- migrate:down\nDROP TABLE users;\n",
        ),
        (
            "002_email_index.sql",
            "-- migrate:no-transaction\n-- migrate:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);\n\
             -- migrate:down\nDROP INDEX CONCURRENTLY IF EXISTS users_email;\n",
        ),
        (
            "003_count.sql",
            "-- migrate:up\nCREATE FUNCTION user_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM users $$;\n\
             -- migrate:down\nDROP FUNCTION user_count();\n",
        ),
    ]);
    let path = dir.path();
    let env = [("DATABASE_URL", url(port, "owner", SECRET, ""))];
    let ok = |args: &[&str]| {
        let run = migrate(path, &env, args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.all());
        run
    };

    ok(&["up", "--dry-run", "--execute"]);
    ok(&["up"]);
    let run = ok(&["status", "--json"]);
    assert_eq!(states(&run), ["1 applied", "2 applied", "3 applied"]);
    assert_eq!(run.json()["migrations"][1]["applied_by"], ROLE);
    ok(&["plan"]);
    ok(&["validate"]);
    ok(&["down", "2"]);
    ok(&["redo", "1"]);
    ok(&["up"]);
    let index: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 'users_email'::regclass AND indisvalid",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(index, 1, "the concurrent index was built, and is valid");

    // A no-transaction migration that fails part-way, repaired by the owner.
    let failing = path.join("migrations/004_more.sql");
    std::fs::write(
        &failing,
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_id_email ON users (id, email);\nSELECT 1/0;\n",
    )
    .unwrap();
    let run = migrate(path, &env, &["up"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("division by zero"), "{}", run.stderr);
    assert_eq!(
        migrate(path, &env, &["up"]).code,
        1,
        "refused until repaired"
    );
    ok(&[
        "repair",
        "4",
        "--mark",
        "rolled-back",
        "--reason",
        "dropped nothing: the index may stay",
    ]);
    std::fs::write(
        &failing,
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_id_email ON users (id, email);\n",
    )
    .unwrap();
    ok(&["up"]);

    // Baseline into another history table, then the action logs of both.
    let legacy = ["--history-table", "legacy_migrations"];
    let run = ok(&[
        &legacy[..],
        &["baseline", "2", "--reason", "adopted", "--json"],
    ]
    .concat());
    assert_eq!(run.json()["recorded"], serde_json::json!([1, 2]));
    let run = ok(&[&legacy[..], &["status", "--json"]].concat());
    assert_eq!(
        states(&run),
        ["1 applied", "2 applied", "3 pending", "4 pending"]
    );
    let run = ok(&["history", "--json"]);
    let actions: Vec<String> = run.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["action"].as_str().unwrap(),
                a["version"],
                a["executed_by"].as_str().unwrap()
            )
        })
        .collect();
    assert!(actions.iter().all(|a| a.ends_with(ROLE)), "{actions:?}");
    assert!(actions.contains(&format!("repair 4 {ROLE}")), "{actions:?}");

    // The lock: a second run waits for the first, which holds it inside a slow migration,
    // then finds nothing left to do.
    std::fs::write(
        path.join("migrations/005_slow.sql"),
        "SELECT pg_sleep(2);\n",
    )
    .unwrap();
    let holder = spawn(
        binary()
            .current_dir(path)
            .env("DATABASE_URL", &env[0].1)
            .arg("up"),
    );
    let started = Instant::now();
    while admin
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND l.granted AND a.usename = $1",
            &[&ROLE],
        )
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the lock was not taken"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = ok(&["up"]);
    let waited = started.elapsed();
    let holder = holder.wait_with_output().unwrap();
    assert!(
        holder.status.success(),
        "{}",
        String::from_utf8_lossy(&holder.stderr)
    );
    assert!(
        String::from_utf8_lossy(&holder.stdout).contains("applied       5 slow"),
        "{}",
        String::from_utf8_lossy(&holder.stdout)
    );
    assert!(run.stdout.contains("nothing to do"), "{}", run.all());
    assert!(
        waited >= Duration::from_millis(1500),
        "the second run waited: {waited:?}"
    );
}

/// Through the binary: `sslmode=require` encrypts (the server rejects anything else),
/// `verify-full` accepts the certificate for the name it was made for and refuses it for
/// 127.0.0.1, saying why; the password shows nowhere.
#[cfg(feature = "tls")]
#[test]
fn tls_require_and_verify_full_against_a_certificate_made_here() {
    use migrate_test_support::tls::{enable_ssl, self_signed};

    let certificates = tempfile::tempdir().unwrap();
    // For `localhost` only, not 127.0.0.1.
    let (cert, key) = self_signed(certificates.path(), "server");
    let server = TestServer::start().unwrap();
    enable_ssl(server.connect("postgres").unwrap(), &cert, &key);
    server.stop().unwrap();
    server.restart().unwrap();
    // Only TLS connections with the password get in; plain TCP is rejected outright.
    require_role_password(
        &server,
        "hostssl tls all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject",
        &["tls"],
    );
    let port = server.port();
    let dir = project(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    let path = dir.path();
    let root = format!("sslrootcert={}", cert.display());
    let at = |host: &str, query: &str| {
        vec![(
            "DATABASE_URL",
            url(port, "tls", SECRET, query).replace("@127.0.0.1:", &format!("@{host}:")),
        )]
    };

    let run = migrate(path, &at("127.0.0.1", "?sslmode=require"), &["up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("applied       1 a"), "{}", run.stdout);
    let verify_full = format!("?sslmode=verify-full&{root}");
    let run = migrate(path, &at("localhost", &verify_full), &["status"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "connecting to postgresql://{ROLE}@localhost:{port}/tls sslmode=verify-full sslrootcert="
        )),
        "{}",
        run.stderr
    );
    // The same through libpq's variables.
    let run = migrate(
        path,
        &[
            ("PGHOST", "localhost".to_owned()),
            ("PGPORT", port.to_string()),
            ("PGDATABASE", "tls".to_owned()),
            ("PGUSER", ROLE.to_owned()),
            ("PGPASSWORD", SECRET.to_owned()),
            ("PGSSLMODE", "verify-full".to_owned()),
            ("PGSSLROOTCERT", cert.display().to_string()),
        ],
        &["status"],
    );
    assert_eq!(run.code, 0, "{}", run.all());

    // The control: plain text is rejected by the server.
    let run = migrate(path, &at("127.0.0.1", "?sslmode=disable"), &["status"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.ends_with(&format!(
            "FATAL: pg_hba.conf rejects connection for host \"127.0.0.1\", user \"{ROLE}\", database \"tls\", no encryption (SQLSTATE 28000)\n   = help: the server admits this user, database and host only over TLS: use sslmode=require (or verify-full)\n"
        )),
        "{}",
        run.stderr
    );

    // Encrypted, but to a database pg_hba.conf does not list.
    let run = migrate(
        path,
        &[(
            "DATABASE_URL",
            url(port, "postgres", SECRET, "?sslmode=require"),
        )],
        &["status"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.ends_with(&format!(
            "FATAL: no pg_hba.conf entry for host \"127.0.0.1\", user \"{ROLE}\", database \"postgres\", SSL encryption (SQLSTATE 28000)\n   = help: the server's pg_hba.conf has no entry admitting this user, database and host with this encryption: change one of them, or ask the server's administrator\n"
        )),
        "{}",
        run.stderr
    );

    // verify-full to an address, and to a name, that the certificate does not hold.
    let run = migrate(path, &at("127.0.0.1", &verify_full), &["status"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("certificate verify failed")
            && run.stderr.contains("(IP address mismatch)")
            && run.stderr.contains(&format!("= help: the server's certificate does not name the host connected to (127.0.0.1:{port}), which verify-full requires")),
        "{}",
        run.stderr
    );
    let conninfo = |host: &str| {
        vec![(
            "DATABASE_URL",
            format!(
                "host={host} hostaddr=127.0.0.1 port={port} dbname=tls user={ROLE} password='{}' sslmode=verify-full sslrootcert='{}'",
                SECRET.replace('\'', "\\'"),
                cert.display()
            ),
        )]
    };
    let run = migrate(path, &conninfo("localhost"), &["status"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = migrate(path, &conninfo("db.wrong.example"), &["status"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("(hostname mismatch)")
            && run.stderr.contains(&format!(
                "does not name the host connected to (db.wrong.example:{port})"
            )),
        "{}",
        run.stderr
    );
    // verify-full without the CA: the system's CAs do not know a self-signed certificate.
    let run = migrate(path, &at("localhost", "?sslmode=verify-full"), &["status"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("self-signed certificate")
            && run.stderr.contains("set sslrootcert=PATH"),
        "{}",
        run.stderr
    );
}
