//! Secrets, identifiers and isolation: history names that need quoting work for every
//! operation and create exactly those tables, two applications with different history tables
//! do not share a lock, and with password authentication the password stays out of errors,
//! logs and the history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use migrate_runtime::config::{ConfigError, ConnectionSettings};
use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migration, Migrator, Repair, State};
use migrate_test_support::passwords::{self, percent_encode, require_passwords};
use migrate_tests::{migrations, scalar, RoundTripCounter};
use postgres::Client;

// ---------------------------------------------------------------------------------------------
// History table names

/// Two reversible migrations and a no-transaction one (whose `running` row is written and
/// updated statement by statement, so every kind of history write meets the names).
fn reversible_set(second_comment: &str) -> Vec<Migration> {
    migrations(&[
        (
            "001_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        (
            "002_b.sql",
            &format!(
                "-- migrate:up\n{second_comment}CREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n"
            ),
        ),
        (
            "003_index.sql",
            "-- migrate:no-transaction\n-- migrate:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a_id ON a (id);\n\
             -- migrate:down\nDROP INDEX CONCURRENTLY IF EXISTS a_id;\n",
        ),
    ])
}

/// Every relation outside the system schemas, as (schema, name, kind).
fn relations(client: &mut Client) -> BTreeSet<(String, String, String)> {
    client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

fn schemas(client: &mut Client) -> BTreeSet<String> {
    client
        .query(
            "SELECT nspname::text FROM pg_namespace \
             WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn relation(schema: &str, name: &str, kind: &str) -> (String, String, String) {
    (schema.to_owned(), name.to_owned(), kind.to_owned())
}

/// Names with quotes, spaces, capitals, non-ASCII letters and SQL fragments, each used as it
/// is: every operation works, and exactly these tables are created, nothing else is created
/// or dropped.
#[test]
fn history_names_that_need_quoting_work_for_every_operation() {
    let names = [
        ("My Schema", "Migration Log"),
        ("we\"ird", "ta\"ble\""),
        ("x; DROP TABLE t; --", "Robert'); DROP TABLE students;--"),
        ("public", "x\"; DROP TABLE t; --"),
        ("CamelCase", "SchemaMigrations"),
        ("données", "journal des migrations"),
    ];
    let set = reversible_set("");
    let edited = reversible_set("-- a comment inside UP\n");
    let server = TestServer::shared();
    for (schema, table) in names {
        let database = server.create_database().unwrap();
        let mut client = database.client().unwrap();
        client
            .batch_execute(
                "CREATE TABLE t (id int); INSERT INTO t VALUES (1);\
                 CREATE TABLE students (id int); INSERT INTO students VALUES (1);\
                 CREATE TABLE a (id int);",
            )
            .unwrap();
        let relations_before = relations(&mut client);
        let schemas_before = schemas(&mut client);
        let migrator = Migrator::new(&set).history_table(schema, table);
        let context = format!("history table {schema:?}.{table:?}");

        // baseline: `a` was made by hand.
        let recorded = migrator
            .baseline(&mut client, 1, "a was made by hand")
            .unwrap_or_else(|e| panic!("{context}: baseline: {e}"));
        assert_eq!(recorded, [1], "{context}");
        let report = migrator
            .run(&mut client)
            .unwrap_or_else(|e| panic!("{context}: run: {e}"));
        assert_eq!(report.applied.len(), 2, "{context}");

        // The no-op start-up: one round trip, which only the fingerprint query gives.
        let proxy = RoundTripCounter::start(server.port());
        let mut counted = proxy.connect(database.name());
        let from = proxy.ready_messages();
        assert!(migrator.run(&mut counted).unwrap().applied.is_empty());
        assert_eq!(proxy.ready_messages() - from, 1, "{context}: fingerprint");
        drop(counted);

        let status = migrator
            .status(&mut client)
            .unwrap_or_else(|e| panic!("{context}: status: {e}"));
        let states: Vec<State> = status.entries.iter().map(|e| e.state).collect();
        assert_eq!(states, [State::Applied; 3], "{context}");

        let report = migrator
            .down(&mut client, 2)
            .unwrap_or_else(|e| panic!("{context}: down: {e}"));
        assert_eq!(report.reverted.len(), 2, "{context}");
        let report = migrator
            .redo(&mut client, 1)
            .unwrap_or_else(|e| panic!("{context}: redo: {e}"));
        assert_eq!((report.reverted.len(), report.applied.len()), (1, 1));
        assert_eq!(migrator.run(&mut client).unwrap().applied.len(), 2);

        // repair: an edited file is refused, then accepted.
        let edited_migrator = Migrator::new(&edited).history_table(schema, table);
        let error = edited_migrator.run(&mut client).unwrap_err();
        assert!(
            matches!(error, Error::ChecksumMismatch { version: 2, .. }),
            "{context}: {error}"
        );
        edited_migrator
            .repair(&mut client, 2, Repair::AcceptChecksum, "a comment only")
            .unwrap_or_else(|e| panic!("{context}: repair: {e}"));
        assert!(edited_migrator.run(&mut client).unwrap().applied.is_empty());

        // The lock: while a run holds it, another run with the same names waits and gives up.
        let slow = {
            let mut slow = edited.clone();
            slow.extend(migrations(&[("004_slow.sql", "SELECT pg_sleep(0.6);\n")]));
            slow
        };
        let mut holder = database.client().unwrap();
        thread::scope(|scope| {
            let holding = scope.spawn(|| {
                Migrator::new(&slow)
                    .history_table(schema, table)
                    .run(&mut holder)
                    .map(|report| report.applied.len())
            });
            wait_for_advisory_lock(&mut client);
            let error = Migrator::new(&slow)
                .history_table(schema, table)
                .lock_wait(Duration::from_millis(200))
                .run(&mut client)
                .unwrap_err();
            assert!(
                matches!(error, Error::LockTimeout { .. }),
                "{context}: {error}"
            );
            assert!(
                error
                    .render()
                    .to_string()
                    .contains(&format!("lock on {schema}.{table}")),
                "{context}: {error}"
            );
            assert_eq!(holding.join().unwrap().unwrap(), 1, "{context}");
        });

        let actions: Vec<String> = migrator
            .history(&mut client)
            .unwrap_or_else(|e| panic!("{context}: history: {e}"))
            .iter()
            .map(|a| format!("{} {}", a.action, a.version))
            .collect();
        assert_eq!(
            actions,
            [
                "baseline 1",
                "apply 2",
                "apply 3",
                "rollback 3",
                "rollback 2",
                "rollback 1",
                "apply 1",
                "apply 2",
                "apply 3",
                "repair 2",
                "apply 4"
            ],
            "{context}"
        );

        // Exactly the two history tables (with their key indexes and the log's identity
        // sequence), `b`, and the index: the sentinels are untouched.
        let history = format!("{table}_history");
        let mut expected = relations_before.clone();
        expected.extend([
            relation(schema, table, "r"),
            relation(schema, &format!("{table}_pkey"), "i"),
            relation(schema, &history, "r"),
            relation(schema, &format!("{history}_pkey"), "i"),
            relation(schema, &format!("{history}_id_seq"), "S"),
            relation("public", "b", "r"),
            relation("public", "a_id", "i"),
        ]);
        assert_eq!(relations(&mut client), expected, "{context}");
        let mut expected_schemas = schemas_before;
        expected_schemas.insert(schema.to_owned());
        assert_eq!(schemas(&mut client), expected_schemas, "{context}");
        assert_eq!(scalar(&mut client, "SELECT count(*) FROM t"), 1);
        assert_eq!(scalar(&mut client, "SELECT count(*) FROM students"), 1);
        let rows: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}.{}", quote(schema), quote(table)),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(rows, 4, "{context}");
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Waits until some session of this database holds an advisory lock.
fn wait_for_advisory_lock(client: &mut Client) {
    let started = Instant::now();
    while scalar(
        client,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    ) == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nobody took the lock"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Names PostgreSQL would cut to 63 bytes are refused before anything is created: a cut
/// table name would leave the action log (`<table>_history`) cut to the same name as the
/// history table, or to an unrelated one.
#[test]
fn history_names_postgresql_would_truncate_are_refused() {
    let set = reversible_set("");
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let before = relations(&mut client);
    let longest_table = "t".repeat(55);
    let too_long_table = "t".repeat(56);
    let longest_schema = "é".repeat(31) + "s"; // 63 bytes
    let too_long_schema = "é".repeat(32);
    let cases = [
        ("public", too_long_table.as_str(), "history table name"),
        (
            too_long_schema.as_str(),
            "schema_migrations",
            "history schema name",
        ),
        ("public", "nul\0inside", "history table name"),
    ];
    for (schema, table, what) in cases {
        let migrator = Migrator::new(&set).history_table(schema, table);
        let errors = [
            migrator.run(&mut client).map(|_| ()),
            migrator.status(&mut client).map(|_| ()),
            migrator.down(&mut client, 1).map(|_| ()),
            migrator.redo(&mut client, 1).map(|_| ()),
            migrator.history(&mut client).map(|_| ()),
            migrator.baseline(&mut client, 1, "x").map(|_| ()),
            migrator
                .repair(&mut client, 1, Repair::AcceptChecksum, "x")
                .map(|_| ()),
            migrator.rehearse(&mut client).map(|_| ()),
            migrator.plan(&mut client).map(|_| ()),
        ];
        for error in errors {
            let error = error.expect_err(what);
            assert!(
                matches!(error, Error::HistoryTableName { .. }),
                "{what}: {error}"
            );
            assert!(error.render().to_string().contains(what), "{error}");
        }
    }
    assert_eq!(relations(&mut client), before, "nothing was created");

    // The longest names that fit work, and are kept whole.
    Migrator::new(&set)
        .history_table(&longest_schema, &longest_table)
        .run(&mut client)
        .unwrap();
    let created: BTreeSet<String> = relations(&mut client)
        .into_iter()
        .filter(|(schema, _, kind)| *schema == longest_schema && kind == "r")
        .map(|(_, name, _)| name)
        .collect();
    assert_eq!(
        created,
        BTreeSet::from([longest_table.clone(), format!("{longest_table}_history")])
    );
}

// ---------------------------------------------------------------------------------------------
// Two applications in one database

/// Application A holds its lock inside a slow migration; applications with another history
/// table (or the same table name in another schema) finish meanwhile, well within A's pause,
/// while a run on A's own history table waits and gives up (the control).
#[test]
fn applications_with_different_history_tables_do_not_block_each_other() {
    const PAUSE: Duration = Duration::from_secs(4);
    let app_a = migrations(&[(
        "001_slow.sql",
        "SELECT pg_sleep(4);\nCREATE TABLE a_done (id int);\n",
    )]);
    let app_b = migrations(&[
        ("001_b.sql", "CREATE TABLE b1 (id int);\n"),
        ("002_b.sql", "CREATE TABLE b2 (id int);\n"),
    ]);
    let app_c = migrations(&[("001_c.sql", "CREATE TABLE c1 (id int);\n")]);
    let database = TestServer::shared().create_database().unwrap();
    let mut holder = database.client().unwrap();
    let mut other = database.client().unwrap();
    let a_started = Instant::now();
    thread::scope(|scope| {
        let a = scope.spawn(|| {
            Migrator::new(&app_a)
                .history_table("public", "a_migrations")
                .run(&mut holder)
                .map(|report| report.applied.len())
        });
        wait_for_advisory_lock(&mut other);

        // B: another table in the same schema; a generous lock wait, so a shared lock would
        // show as a run lasting until A is done.
        let started = Instant::now();
        let report = Migrator::new(&app_b)
            .history_table("public", "b_migrations")
            .lock_wait(Duration::from_secs(30))
            .run(&mut other)
            .unwrap();
        let b_took = started.elapsed();
        assert_eq!(report.applied.len(), 2);
        assert!(b_took < Duration::from_secs(2), "B waited {b_took:?}");
        // C: A's table name, in another schema.
        let started = Instant::now();
        let report = Migrator::new(&app_c)
            .history_table("app_c", "a_migrations")
            .lock_wait(Duration::from_secs(30))
            .run(&mut other)
            .unwrap();
        assert_eq!(report.applied.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(!a.is_finished(), "A still holds its lock");

        // The control: A's own history table does wait, and gives up.
        let error = Migrator::new(&app_a)
            .history_table("public", "a_migrations")
            .lock_wait(Duration::from_millis(300))
            .run(&mut other)
            .unwrap_err();
        assert!(matches!(error, Error::LockTimeout { .. }), "{error}");
        assert!(
            error
                .render()
                .to_string()
                .contains("lock on public.a_migrations"),
            "{error}"
        );
        assert!(
            a_started.elapsed() < PAUSE,
            "the control ran while A held the lock"
        );
        assert_eq!(a.join().unwrap().unwrap(), 1);
    });
    let mut client = database.client().unwrap();
    for table in [
        "public.a_migrations",
        "public.b_migrations",
        "app_c.a_migrations",
    ] {
        assert!(
            scalar(&mut client, &format!("SELECT count(*) FROM {table}")) >= 1,
            "{table}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets with password authentication

/// The role's password: spaces, quotes and URL delimiters, so each source must carry it
/// intact. What must never show is checked by its distinctive start, [`SECRET_CORE`], which
/// percent-encoding or quoting leaves as it is.
const SECRET: &str = "Kx93-hunter2 q'@:/?&%=";
const SECRET_CORE: &str = "Kx93-hunter2";
/// A wrong password, which must not show either.
const WRONG: &str = "Wr0ng-guess-77";
const ROLE: &str = "app_owner";

/// A server of this test binary's own where TCP connections need a password (SCRAM), with the
/// role `app_owner` (not a superuser) holding [`SECRET`]. The Unix socket stays trusted for the
/// test's own administration.
fn password_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = TestServer::start().unwrap();
        require_passwords(
            &mut server.connect("postgres").unwrap(),
            server.port(),
            ROLE,
            SECRET,
            "host all all 127.0.0.1/32 scram-sha-256",
            &[],
        );
        server
    })
}

/// A new database owned by [`ROLE`].
fn owned_database(server: &TestServer, name: &str) -> String {
    server
        .connect("postgres")
        .unwrap()
        .batch_execute(&format!("CREATE DATABASE {name} OWNER {ROLE}"))
        .unwrap();
    name.to_owned()
}

/// Every way the settings can carry a password: (the source reported, --database-url,
/// environment).
type Source = (&'static str, Option<String>, Vec<(&'static str, String)>);

fn password_sources(port: u16, database: &str, password: &str) -> Vec<Source> {
    let encoded = percent_encode(password);
    let conninfo_password = password.replace('\\', "\\\\").replace('\'', "\\'");
    let host = "127.0.0.1".to_owned();
    vec![
        (
            "--database-url",
            Some(format!(
                "postgresql://{ROLE}:{encoded}@{host}:{port}/{database}"
            )),
            vec![],
        ),
        (
            "DATABASE_URL",
            None,
            vec![(
                "DATABASE_URL",
                format!("postgres://{ROLE}:{encoded}@{host}:{port}/{database}?sslmode=disable"),
            )],
        ),
        (
            "DATABASE_URL",
            None,
            vec![(
                "DATABASE_URL",
                format!("postgresql://{ROLE}@{host}:{port}/{database}?password={encoded}"),
            )],
        ),
        (
            "DATABASE_URL",
            None,
            vec![(
                "DATABASE_URL",
                format!("host={host} port={port} dbname={database} user={ROLE} password='{conninfo_password}'"),
            )],
        ),
        (
            "DATABASE_URL",
            None,
            vec![
                (
                    "DATABASE_URL",
                    format!("postgresql://{ROLE}@{host}:{port}/{database}"),
                ),
                ("PGPASSWORD", password.to_owned()),
            ],
        ),
        (
            "DB_* variables",
            None,
            vec![
                ("DB_HOST", host.clone()),
                ("DB_PORT", port.to_string()),
                ("DB_NAME", database.to_owned()),
                ("DB_USER", ROLE.to_owned()),
                ("DB_PASSWORD", password.to_owned()),
            ],
        ),
        (
            "PG* variables",
            None,
            vec![
                ("PGHOST", host.clone()),
                ("PGPORT", port.to_string()),
                ("PGDATABASE", database.to_owned()),
                ("PGUSER", ROLE.to_owned()),
                ("PGPASSWORD", password.to_owned()),
            ],
        ),
    ]
}

fn resolve(explicit: Option<&str>, env: &[(&str, String)]) -> ConnectionSettings {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    ConnectionSettings::resolve(explicit, |name| env.get(name).cloned())
        .expect("valid settings")
        .expect("configured")
}

thread_local! {
    /// Whether log records on this thread are kept (the server set-up's own statements, which
    /// hold the password, are not ours to check).
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Every log record, of every crate and level, made while capturing.
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        CAPTURING.with(std::cell::Cell::get)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LOGS.lock().unwrap().push(format!(
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

fn assert_secret_free(what: &str, text: &str) {
    passwords::assert_secret_free(what, text, &[SECRET_CORE, WRONG]);
}

#[test]
fn with_password_authentication_the_password_stays_out_of_errors_logs_and_history() {
    let server = password_server();
    let database = owned_database(server, "library_secrets");
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    CAPTURING.with(|capturing| capturing.set(true));
    let set = migrations(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        ("002_fails.sql", "INSERT INTO missing VALUES (1);\n"),
    ]);
    let mut shown = Vec::new();

    for (source, explicit, env) in password_sources(server.port(), &database, SECRET) {
        let settings = resolve(explicit.as_deref(), &env);
        assert_eq!(settings.source(), source);
        shown.push(format!("{}\n{settings:?}", settings.describe()));
        // SCRAM is required, so connecting proves the password got through intact.
        let mut client = settings
            .connect()
            .unwrap_or_else(|error| panic!("{source} {env:?}: {error}"));
        let user: String = client
            .query_one("SELECT current_user::text", &[])
            .unwrap()
            .get(0);
        assert_eq!(user, ROLE);
        let error = Migrator::new(&set).run(&mut client).unwrap_err();
        assert!(matches!(error, Error::MigrationFailed(_)), "{error}");
        // `{:?}` is the rendered text; `{:#?}` the fields.
        shown.push(format!("{error}\n{error:?}\n{error:#?}"));
    }

    for (source, explicit, env) in password_sources(server.port(), &database, WRONG) {
        let settings = resolve(explicit.as_deref(), &env);
        let error = match settings.connect() {
            Ok(_) => panic!("{source}: a wrong password connected"),
            Err(error) => error,
        };
        let ConfigError::Connect { error: driver, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(driver.code().map(|code| code.code()), Some("28P01"));
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "password authentication failed for user \"{ROLE}\""
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!("check the user name and password (from {source})")),
            "{message}"
        );
        shown.push(format!("{error}\n{error:?}"));
    }

    // Unreachable: the retries are logged, and the final error names the target.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgresql://{ROLE}:{}@127.0.0.1:{closed}/x",
        percent_encode(SECRET)
    );
    let error = match resolve(Some(&url), &[]).connect_with_wait(Duration::from_millis(500)) {
        Ok(_) => panic!("something listens on {closed}"),
        Err(error) => error,
    };
    assert!(matches!(error, ConfigError::Timeout { .. }), "{error:?}");
    shown.push(format!("{error}\n{error:?}"));
    // A malformed string is echoed, redacted.
    let bad = format!(
        "postgresql://{ROLE}:{}@127.0.0.1:notaport/x",
        percent_encode(SECRET)
    );
    let error = ConnectionSettings::resolve(Some(&bad), |_| None).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("postgresql://{ROLE}:***@")),
        "{error}"
    );
    shown.push(format!("{error}\n{error:?}"));

    CAPTURING.with(|capturing| capturing.set(false));
    let logs = LOGS.lock().unwrap().join("\n");
    assert!(
        logs.contains("is not reachable yet"),
        "the capture works: the retries were logged:\n{logs}"
    );
    assert!(
        logs.contains("executing"),
        "the driver's own records were captured too"
    );
    assert_secret_free("the log", &logs);
    for text in &shown {
        assert_secret_free("an error or description", text);
    }

    // The history: every column of every row.
    let mut admin = server.connect(&database).unwrap();
    passwords::assert_history_names_only(&mut admin, ROLE, &[SECRET_CORE, WRONG]);
}
