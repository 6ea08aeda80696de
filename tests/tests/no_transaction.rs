//! Migrations that run outside a transaction: success, a failing statement, a killed
//! process, and getting back on track with `repair`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migrator, Repair};
use migrate_tests::{migrations, scalar};
use postgres::Client;

const TABLE: &str = "CREATE TABLE t (a int, b int, c int);\n\
                     INSERT INTO t SELECT g, g % 10, g FROM generate_series(1, 1000) g;\n";

fn index_exists(client: &mut Client, name: &str) -> bool {
    scalar(
        client,
        &format!("SELECT count(*) FROM pg_indexes WHERE indexname = '{name}'"),
    ) == 1
}

/// What an operator types into psql: one statement at a time (several in one query string
/// form an implicit transaction, which `CONCURRENTLY` refuses).
fn by_hand(client: &mut Client, statements: &[&str]) {
    for statement in statements {
        client.batch_execute(statement).unwrap();
    }
}

fn status(client: &mut Client, version: i64) -> String {
    client
        .query_one(
            "SELECT status FROM schema_migrations WHERE version = $1",
            &[&version],
        )
        .unwrap()
        .get(0)
}

#[test]
fn three_concurrent_index_builds_apply() {
    let set = migrations(&[
        ("001_t.sql", TABLE),
        (
            "002_indexes.sql",
            "-- migrate:no-transaction\n\
             CREATE INDEX CONCURRENTLY t_a ON t (a);\n\
             CREATE INDEX CONCURRENTLY t_b ON t (b);\n\
             CREATE INDEX CONCURRENTLY t_c ON t (c);\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let report = Migrator::new(&set).run(&mut client).unwrap();
    assert_eq!(report.applied.len(), 2);
    for index in ["t_a", "t_b", "t_c"] {
        assert!(index_exists(&mut client, index), "{index}");
    }
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        ),
        0
    );
    assert_eq!(status(&mut client, 2), "applied");
}

/// The second statement builds a unique index over duplicates: it fails, and PostgreSQL
/// leaves the index behind, INVALID.
fn failing_second_statement() -> Vec<migrate_runtime::Migration> {
    migrations(&[
        ("001_t.sql", TABLE),
        (
            "002_indexes.sql",
            "-- Three concurrent builds; the second cannot succeed on this data.\n\
             -- migrate:no-transaction\n\
             -- migrate:up\n\
             CREATE INDEX CONCURRENTLY t_a ON t (a);\n\
             CREATE UNIQUE INDEX CONCURRENTLY t_b ON t (b);\n\
             CREATE INDEX CONCURRENTLY t_c ON t (c);\n",
        ),
        ("003_after.sql", "CREATE TABLE after_indexes (id int);\n"),
    ])
}

#[test]
fn a_failing_statement_is_recorded_and_refused_until_repaired() {
    let set = failing_second_statement();
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();

    let error = Migrator::new(&set).run(&mut client).unwrap_err();
    let Error::MigrationFailed(failure) = &error else {
        panic!("{error}")
    };
    let progress = failure.statements.expect("statement progress");
    assert_eq!((progress.failed, progress.total), (2, 3));
    assert_eq!((failure.line, failure.sqlstate.as_str()), (5, "23505"));
    assert_eq!(failure.invalid_indexes, ["public.t_b"]);
    let message = error.render().to_string();
    assert!(message.contains("statement 2 of 3 failed; this migration runs outside a transaction, so the 1 statement(s) before it stay applied"), "{message}");
    assert!(message.contains("PostgreSQL left index public.t_b INVALID; drop it (DROP INDEX CONCURRENTLY public.t_b)"), "{message}");

    // The first index stays, the third never ran, and the row says `failed`.
    assert!(index_exists(&mut client, "t_a"));
    assert!(!index_exists(&mut client, "t_c"));
    assert_eq!(status(&mut client, 2), "failed");

    // Every later run refuses, saying what ran and how to resolve it.
    let refused = Migrator::new(&set).run(&mut client).unwrap_err();
    assert!(matches!(refused, Error::Unfinished(_)), "{refused}");
    let message = refused.render().to_string();
    assert!(
        message.starts_with("error: migration 2 (indexes) failed part-way outside a transaction"),
        "{message}"
    );
    assert!(message.contains("statements that ran and stay applied:\n       1. line 4: CREATE INDEX CONCURRENTLY t_a ON t (a);"), "{message}");
    assert!(message.contains("recorded error: 23505:"), "{message}");
    assert!(
        message.contains("(statement 2 of 3) [left INVALID: public.t_b]"),
        "{message}"
    );
    assert!(
        message
            .contains("it should run again:  migrate repair 2 --mark rolled-back --reason \"...\""),
        "{message}"
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'after_indexes'"
        ),
        0
    );

    // The operator undoes what ran and fixes the data, then records it.
    by_hand(
        &mut client,
        &[
            "DROP INDEX CONCURRENTLY t_a",
            "DROP INDEX CONCURRENTLY t_b",
            "UPDATE t SET b = a",
        ],
    );
    Migrator::new(&set)
        .applied_by("ops@example.com")
        .repair(
            &mut client,
            2,
            Repair::RolledBack,
            "dropped t_a and the invalid t_b, made b unique",
        )
        .unwrap();
    let report = Migrator::new(&set).run(&mut client).unwrap();
    assert_eq!(
        report.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(index_exists(&mut client, "t_c"));

    let repair = client
        .query_one(
            "SELECT executed_by, note FROM schema_migrations_history WHERE action = 'repair'",
            &[],
        )
        .unwrap();
    assert_eq!(repair.get::<_, String>(0), "ops@example.com");
    assert_eq!(
        repair.get::<_, String>(1),
        "marked rolled back: dropped t_a and the invalid t_b, made b unique"
    );
}

#[test]
fn a_migration_finished_by_hand_can_be_marked_applied() {
    let set = failing_second_statement();
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(&set).run(&mut client).unwrap_err();

    by_hand(
        &mut client,
        &[
            "DROP INDEX CONCURRENTLY t_b",
            "CREATE INDEX CONCURRENTLY t_b ON t (b)",
            "CREATE INDEX CONCURRENTLY t_c ON t (c)",
        ],
    );
    Migrator::new(&set)
        .repair(
            &mut client,
            2,
            Repair::Applied,
            "built t_b non-unique and t_c by hand",
        )
        .unwrap();
    assert_eq!(status(&mut client, 2), "applied");
    let report = Migrator::new(&set).run(&mut client).unwrap();
    assert_eq!(
        report.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [3]
    );
}

#[test]
fn a_process_killed_mid_migration_leaves_running_and_is_refused_until_repaired() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001_t.sql"), TABLE).unwrap();
    std::fs::write(
        dir.path().join("002_slow.sql"),
        "-- migrate:no-transaction\n\
         CREATE INDEX CONCURRENTLY t_a ON t (a);\n\
         SELECT pg_sleep(2);\n\
         CREATE INDEX CONCURRENTLY t_c ON t (c);\n",
    )
    .unwrap();
    let set = migrate_runtime::source::read_dir(dir.path(), "")
        .unwrap()
        .migrations;
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_apply_migrations"))
        .arg(dir.path())
        .env("DATABASE_URL", database.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the slow migration is in its second statement, then kill the process.
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(2)%' AND datname = current_database()";
    let deadline = Instant::now() + Duration::from_secs(20);
    while scalar(&mut client, sleeping) == 0 {
        assert!(Instant::now() < deadline, "the migration never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(status(&mut client, 2), "running");

    // The next run waits for the dead session's lock to go, then refuses.
    let error = Migrator::new(&set)
        .lock_wait(Duration::from_secs(20))
        .run(&mut client)
        .unwrap_err();
    let message = error.render().to_string();
    assert!(
        message.starts_with(
            "error: migration 2 (slow) was interrupted while running outside a transaction"
        ),
        "{message}"
    );
    assert!(message.contains("statements that may have run:\n       1. line 2: CREATE INDEX CONCURRENTLY t_a ON t (a);\n       2. line 3: SELECT pg_sleep(2);\n       3. line 4:"), "{message}");

    by_hand(
        &mut client,
        &[
            "DROP INDEX CONCURRENTLY IF EXISTS t_a",
            "DROP INDEX CONCURRENTLY IF EXISTS t_c",
        ],
    );
    Migrator::new(&set)
        .repair(
            &mut client,
            2,
            Repair::RolledBack,
            "the deploy was killed; dropped its indexes",
        )
        .unwrap();
    let report = Migrator::new(&set).run(&mut client).unwrap();
    assert_eq!(
        report.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [2]
    );
    assert!(index_exists(&mut client, "t_c"));
}

#[test]
fn repairs_that_do_not_fit_the_state_are_refused() {
    let set = migrations(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(&set);
    migrator.run(&mut client).unwrap();

    let error = migrator
        .repair(&mut client, 1, Repair::RolledBack, "oops")
        .unwrap_err();
    assert_eq!(
        error.render().to_string(),
        "error: invalid migrator setting: nothing to repair: migration 1 is `applied`; only a `failed` or `running` migration can be marked rolled back"
    );
    let error = migrator
        .repair(&mut client, 1, Repair::AcceptChecksum, "edited")
        .unwrap_err();
    assert!(
        error
            .render()
            .to_string()
            .contains("already matches this binary"),
        "{error}"
    );
    let error = migrator
        .repair(&mut client, 1, Repair::AcceptChecksum, " ")
        .unwrap_err();
    assert!(error.render().to_string().contains("say why"), "{error}");
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM schema_migrations_history WHERE action = 'repair'"
        ),
        0
    );
}

#[test]
fn an_edited_file_is_accepted_only_by_an_explicit_repair() {
    let original = migrations(&[("001_a.sql", "CREATE TABLE a (id int);\n")]);
    let edited = migrations(&[(
        "001_a.sql",
        "-- a comment added later\nCREATE TABLE a (id int);\n",
    )]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(&original).run(&mut client).unwrap();

    let error = Migrator::new(&edited).run(&mut client).unwrap_err();
    assert!(matches!(error, Error::ChecksumMismatch { .. }), "{error}");
    Migrator::new(&edited)
        .repair(
            &mut client,
            1,
            Repair::AcceptChecksum,
            "only a comment was added",
        )
        .unwrap();
    assert!(Migrator::new(&edited)
        .run(&mut client)
        .unwrap()
        .applied
        .is_empty());
    let recorded: String = client
        .query_one(
            "SELECT checksum FROM schema_migrations WHERE version = 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, edited[0].checksum().to_string());
}
