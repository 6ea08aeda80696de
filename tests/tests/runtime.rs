//! `Migrator::run` against a real PostgreSQL: a throwaway server per test binary, a fresh
//! database per test.

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_runtime::{Error, Migration, Migrator};
use migrate_tests::{
    five, migrations, numbered, numbered_tables, scalar, tables, RoundTripCounter,
};
use postgres::error::SqlState;

static EXAMPLE: &[Migration] = migrate_macros::embed_migrations!("../migrations");

fn server() -> &'static TestServer {
    TestServer::shared()
}

#[test]
fn fresh_database_gets_everything_in_order_with_correct_history() {
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let report = Migrator::new(EXAMPLE).run(&mut client).unwrap();

    // 011 is production-only, and no environment was given.
    let expected: Vec<i64> = (1..=10).collect();
    let applied: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(applied, expected);

    let rows = client
        .query(
            "SELECT version, name, checksum, execution_time_ms, applied_by, status, applied_at <= now() \
             FROM public.schema_migrations ORDER BY version",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 10);
    for (row, migration) in rows.iter().zip(EXAMPLE) {
        assert_eq!(row.get::<_, i64>(0), migration.version());
        assert_eq!(row.get::<_, String>(1), migration.name());
        assert_eq!(row.get::<_, String>(2), migration.checksum().to_string());
        assert!(row.get::<_, i64>(3) >= 0);
        assert_eq!(
            row.get::<_, String>(4),
            "postgres",
            "defaults to the database user"
        );
        assert_eq!(row.get::<_, String>(5), "applied");
        assert!(row.get::<_, bool>(6));
    }
    let actions = scalar(
        &mut client,
        "SELECT count(*) FROM public.schema_migrations_history WHERE action = 'apply' AND status = 'success'",
    );
    assert_eq!(actions, 10);
    // The schema really is there, including the no-transaction migration's indexes.
    assert!(tables(&mut client, "platform").contains(&"organizations".to_owned()));
    let indexes = scalar(
        &mut client,
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'notifications_unread_idx'",
    );
    assert_eq!(indexes, 1);
}

#[test]
fn second_run_applies_nothing_writes_nothing_and_costs_one_round_trip() {
    let database = server().migrated_database(&Migrator::new(EXAMPLE)).unwrap();
    let proxy = RoundTripCounter::start(server().port());
    let mut client = proxy.connect(database.name());
    let before_connect = proxy.ready_messages();
    let writes = |client: &mut postgres::Client| {
        scalar(
            client,
            "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 'schema_migrations'",
        )
    };
    let writes_before = writes(&mut client);
    let history_before = scalar(
        &mut client,
        "SELECT count(*) FROM schema_migrations_history",
    );

    let counted_from = proxy.ready_messages();
    let report = Migrator::new(EXAMPLE).run(&mut client).unwrap();
    let round_trips = proxy.ready_messages() - counted_from;

    assert!(report.applied.is_empty());
    assert_eq!(round_trips, 1, "a no-op start-up reads the history once");
    assert!(before_connect >= 1, "the proxy saw the start-up");
    assert_eq!(writes(&mut client), writes_before);
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM schema_migrations_history"
        ),
        history_before
    );
}

#[test]
fn a_run_of_transactional_migrations_costs_one_round_trip() {
    let set = migrations(&[
        (
            "001_a.sql",
            "CREATE TABLE a (id int);\nCREATE INDEX a_id ON a (id);\n",
        ),
        ("002_b.sql", "CREATE TABLE b (id int);\n"),
        ("003_c.sql", "CREATE TABLE c (id int);\n"),
        ("004_d.sql", "CREATE TABLE d (id int);\n"),
    ]);
    let database = server().create_database().unwrap();
    let proxy = RoundTripCounter::start(server().port());
    let mut client = proxy.connect(database.name());

    let counted_from = proxy.ready_messages();
    let report = Migrator::new(&set).run(&mut client).unwrap();
    let round_trips = proxy.ready_messages() - counted_from;

    assert_eq!(report.applied.len(), 4);
    // History read (table missing), lock + tables + re-read, the 4 migrations (each in its
    // own transaction, one message), unlock.
    assert_eq!(
        round_trips, 4,
        "one round trip for the whole run of migrations"
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(DISTINCT xmin::text) FROM schema_migrations"
        ),
        4,
        "each migration committed in its own transaction"
    );
}

#[test]
fn a_batch_is_durable_when_its_last_commit_is() {
    // Each migration notes the synchronous_commit its own transaction runs with.
    let note = "INSERT INTO seen SELECT current_setting('synchronous_commit');\n";
    let set = migrations(&[
        (
            "001_seen.sql",
            "CREATE TABLE seen (setting text, at serial);\n",
        ),
        ("002_b.sql", note),
        ("003_c.sql", note),
        ("004_d.sql", note),
    ]);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    // The throwaway server itself runs with synchronous_commit off; a production session has it on.
    client.batch_execute("SET synchronous_commit = on").unwrap();
    Migrator::new(&set).run(&mut client).unwrap();

    let settings: Vec<String> = client
        .query("SELECT setting FROM seen ORDER BY at", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // All but the last commit without waiting for the WAL flush; the last one keeps the
    // session's setting and its flush covers the earlier commits, before anything is reported.
    assert_eq!(settings, ["off", "off", "on"]);
}

#[test]
fn grouped_failure_in_the_third_of_five_leaves_none() {
    let set = five(true);
    let (_database, mut client, error) = run_grouped_to_failure(&set);
    let Error::MigrationFailed(failure) = &error else {
        panic!("expected a migration failure, got {error}");
    };
    assert_eq!(
        (failure.version, failure.line, failure.column),
        (3, 3, Some(13))
    );
    assert!(tables(&mut client, "public")
        .iter()
        .all(|t| t.starts_with("schema_migrations")));
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        0
    );
    let failed = scalar(
        &mut client,
        "SELECT count(*) FROM schema_migrations_history WHERE version = 3 AND status = 'failed'",
    );
    assert_eq!(failed, 1);
}

/// Runs `set` grouped on a fresh database, expecting it to fail.
fn run_grouped_to_failure(set: &[Migration]) -> (TestDatabase<'static>, postgres::Client, Error) {
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let error = Migrator::new(set)
        .grouped(true)
        .run(&mut client)
        .unwrap_err();
    (database, client, error)
}

#[test]
fn a_large_group_is_one_transaction_sent_in_several_messages() {
    let set = numbered(250, |_| None);
    let database = server().create_database().unwrap();
    let proxy = RoundTripCounter::start(server().port());
    let mut client = proxy.connect(database.name());

    let counted_from = proxy.ready_messages();
    let report = Migrator::new(&set).grouped(true).run(&mut client).unwrap();
    let round_trips = proxy.ready_messages() - counted_from;

    assert_eq!(report.applied.len(), 250);
    // History read, lock + tables + re-read, the group in messages of at most 100
    // migrations (100 + 100 + 50), unlock.
    assert_eq!(round_trips, 6);
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(DISTINCT xmin::text) FROM schema_migrations"
        ),
        1,
        "all 250 committed in one transaction"
    );
    assert_eq!(numbered_tables(&mut client), 250);
}

#[test]
fn a_grouped_failure_in_a_later_message_leaves_none_and_points_at_its_line() {
    let set = numbered(250, |v| {
        (v == 230).then(|| "CREATE TABLE t230 (id int);\nINSERT INTO t999 VALUES (1);\n".to_owned())
    });
    let (_database, mut client, error) = run_grouped_to_failure(&set);
    let Error::MigrationFailed(failure) = &error else {
        panic!("expected a migration failure, got {error}");
    };
    assert_eq!(
        (
            failure.version,
            failure.line,
            failure.column,
            failure.sqlstate.as_str()
        ),
        (230, 2, Some(13), "42P01")
    );
    assert!(
        error.render().to_string().contains("0230_t230.sql:2:13"),
        "{error}"
    );
    assert_eq!(
        numbered_tables(&mut client),
        0,
        "the first two messages' tables were rolled back with the rest"
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        0
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM schema_migrations_history WHERE version = 230 AND status = 'failed'"
        ),
        1
    );
}

#[test]
fn a_grouped_failure_without_a_position_in_a_later_message_is_blamed_on_the_right_one() {
    let set = numbered(250, |v| {
        (v == 170).then(|| "INSERT INTO t1 VALUES (1);\nINSERT INTO t1 VALUES (1);\n".to_owned())
    });
    let (_database, mut client, error) = run_grouped_to_failure(&set);
    let Error::MigrationFailed(failure) = &error else {
        panic!("expected a migration failure, got {error}");
    };
    assert_eq!(
        (failure.version, failure.sqlstate.as_str(), failure.column),
        (170, "23505", None)
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        0
    );
    assert_eq!(numbered_tables(&mut client), 0);
}

#[test]
fn per_migration_failure_keeps_the_first_two_and_records_the_third() {
    let set = five(true);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let error = Migrator::new(&set).run(&mut client).unwrap_err();

    let message = error.render().to_string();
    assert_eq!(error.sqlstate().as_ref().map(SqlState::code), Some("42P01"));
    assert!(
        message.contains("migration 3 (c) failed: relation \"missing_table\" does not exist"),
        "{message}"
    );
    assert!(message.contains("--> 003_c.sql:3:13"), "{message}");
    assert!(message.contains("SQLSTATE 42P01"), "{message}");

    assert_eq!(
        tables(&mut client, "public"),
        ["a", "b", "schema_migrations", "schema_migrations_history"]
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        2
    );
    let recorded: String = client
        .query_one(
            "SELECT error_message FROM schema_migrations_history WHERE version = 3 AND status = 'failed'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        recorded,
        "42P01: relation \"missing_table\" does not exist at 003_c.sql:3:13"
    );

    // Fixing the file lets the next run continue where it stopped.
    let fixed = five(false);
    let report = Migrator::new(&fixed).run(&mut client).unwrap();
    let versions: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(versions, [3, 4, 5]);
}

#[test]
fn tampered_checksum_is_refused_with_both_checksums() {
    let set = five(false);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(&set).run(&mut client).unwrap();
    client
        .batch_execute(&format!(
            "UPDATE schema_migrations SET checksum = 'sha256:{}' WHERE version = 2",
            "0".repeat(64)
        ))
        .unwrap();

    let error = Migrator::new(&set).run(&mut client).unwrap_err();
    assert!(
        matches!(error, Error::ChecksumMismatch { version: 2, .. }),
        "{error}"
    );
    let message = error.render().to_string();
    assert!(
        message.contains("migration 2 (b) was changed after it was applied"),
        "{message}"
    );
    assert!(message.contains("--> 002_b.sql"), "{message}");
    assert!(
        message.contains(&format!("applied checksum:  sha256:{}", "0".repeat(64))),
        "{message}"
    );
    assert!(
        message.contains(&format!("embedded checksum: {}", set[1].checksum())),
        "{message}"
    );
    assert!(message.contains("help: restore the file"), "{message}");
}

#[test]
fn versions_missing_from_the_binary_are_refused() {
    let set = five(false);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(&set).run(&mut client).unwrap();

    let older_binary = &set[..3];
    let error = Migrator::new(older_binary).run(&mut client).unwrap_err();
    assert!(
        matches!(error, Error::MissingFromBinary(ref v) if v.len() == 2),
        "{error}"
    );
    let message = error.render().to_string();
    assert!(message.contains("4 (d), 5 (e)"), "{message}");
    assert!(
        message.contains("this binary is older than the database"),
        "{message}"
    );
}

#[test]
fn out_of_order_pending_is_refused_unless_allowed() {
    let all = five(false);
    let without_third: Vec<Migration> = all.iter().filter(|m| m.version() != 3).cloned().collect();
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(&without_third).run(&mut client).unwrap();

    let error = Migrator::new(&all).run(&mut client).unwrap_err();
    assert!(
        matches!(
            error,
            Error::OutOfOrder {
                version: 3,
                highest_applied: 5,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.render().to_string().contains("--> 003_c.sql"));
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        4
    );

    let report = Migrator::new(&all)
        .allow_out_of_order(true)
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.applied[0].version, 3);
}

#[test]
fn custom_schema_and_table() {
    let set = five(false);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(&set).history_table("platform", "Migration History");
    migrator.run(&mut client).unwrap();
    assert_eq!(
        tables(&mut client, "platform"),
        ["Migration History", "Migration History_history"]
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM platform.\"Migration History\""
        ),
        5
    );
    assert!(migrator.run(&mut client).unwrap().applied.is_empty());
}

#[test]
fn target_version_stops_there() {
    let set = five(false);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let report = Migrator::new(&set).target(3).run(&mut client).unwrap();
    assert_eq!(
        report.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let report = Migrator::new(&set).run(&mut client).unwrap();
    assert_eq!(
        report.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [4, 5]
    );
}

#[test]
fn environment_filters_migrations_and_is_recorded() {
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let report = Migrator::new(EXAMPLE)
        .environment("staging")
        .run(&mut client)
        .unwrap();
    assert!(!report.applied.iter().any(|a| a.name == "create_lancio_org"));

    let report = Migrator::new(EXAMPLE)
        .environment("production")
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.applied[0].name, "create_lancio_org");
    let lancio = scalar(
        &mut client,
        "SELECT count(*) FROM platform.organizations WHERE slug = 'lancio'",
    );
    assert_eq!(lancio, 1);
    let environments = client
        .query(
            "SELECT DISTINCT environment FROM schema_migrations_history ORDER BY 1",
            &[],
        )
        .unwrap();
    let environments: Vec<String> = environments.iter().map(|r| r.get(0)).collect();
    assert_eq!(environments, ["production", "staging"]);
}

#[test]
fn applied_by_is_recorded_and_values_are_escaped() {
    let set = five(false);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let who = "o'brien\\'; DROP TABLE a; --";
    Migrator::new(&set)
        .applied_by(who)
        .run(&mut client)
        .unwrap();
    let recorded: Vec<String> = client
        .query("SELECT DISTINCT applied_by FROM schema_migrations", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(recorded, [who]);
    assert!(tables(&mut client, "public").contains(&"a".to_owned()));
}

#[test]
fn migrated_databases_are_clones_of_one_template() {
    let set = migrations(&[("001_only.sql", "CREATE TABLE only_here (id int);\n")]);
    let migrator = Migrator::new(&set);
    let first = server().migrated_database(&migrator).unwrap();
    let second = server().migrated_database(&migrator).unwrap();
    assert_ne!(first.name(), second.name());
    let applied_at = |database: &TestDatabase<'_>| {
        scalar(
            &mut database.client().unwrap(),
            "SELECT (extract(epoch FROM applied_at) * 1000000)::bigint FROM schema_migrations",
        )
    };
    // Migrated once: both carry the template's history row, to the microsecond.
    assert_eq!(applied_at(&first), applied_at(&second));
    // And they are separate databases.
    first
        .client()
        .unwrap()
        .batch_execute("DROP TABLE only_here")
        .unwrap();
    assert_eq!(
        tables(&mut second.client().unwrap(), "public")[0],
        "only_here"
    );
}

#[test]
fn a_failure_without_a_position_inside_a_batch_is_blamed_on_the_right_migration() {
    let set = migrations(&[
        ("001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n"),
        ("002_b.sql", "INSERT INTO a VALUES (1);\n"),
        (
            "003_c.sql",
            "INSERT INTO a VALUES (2);\nINSERT INTO a VALUES (1);\n",
        ),
        ("004_d.sql", "INSERT INTO a VALUES (4);\n"),
    ]);
    let database = server().create_database().unwrap();
    let mut client = database.client().unwrap();
    let error = Migrator::new(&set).run(&mut client).unwrap_err();
    let Error::MigrationFailed(failure) = &error else {
        panic!("{error}")
    };
    assert_eq!(
        (failure.version, failure.sqlstate.as_str(), failure.column),
        (3, "23505", None)
    );
    // The server gives no position; replaying 003 statement by statement finds its second.
    assert!(
        error.render().to_string().contains("--> 003_c.sql:2\n"),
        "{error}"
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        2
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM a"),
        1,
        "only 002's row; 003 and 004 left nothing"
    );
}

/// A database error outside a migration's SQL shows the server's message, not only the
/// driver's "db error": here the history schema cannot be created by a role without rights.
#[test]
fn database_errors_show_the_servers_message() {
    let database = server().create_database().unwrap();
    let mut admin = database.client().unwrap();
    // PUBLIC has no CREATE on a database, so this role cannot make the history's schema.
    admin
        .batch_execute("DROP ROLE IF EXISTS no_rights; CREATE ROLE no_rights LOGIN")
        .unwrap();
    let mut config = database.config();
    config.user("no_rights");
    let mut client = config.connect(postgres::NoTls).unwrap();
    let error = Migrator::new(EXAMPLE)
        .history_table("audit", "schema_migrations")
        .run(&mut client)
        .unwrap_err();
    let shown = error.render().to_string();
    assert!(
        shown.starts_with("error: database error while ")
            && shown.contains("ERROR: permission denied for database")
            && shown.contains("(SQLSTATE 42501)"),
        "{shown}"
    );
}

/// An error's `Display` is one lowercase line; the server's message is in its `source()`
/// chain once; `render()` is the compiler-style text the command line prints.
#[test]
fn errors_are_one_line_with_their_cause_once_in_the_source_chain() {
    let database = server().create_database().unwrap();
    let mut admin = database.client().unwrap();
    admin
        .batch_execute("DROP ROLE IF EXISTS no_rights_2; CREATE ROLE no_rights_2 LOGIN")
        .unwrap();
    let mut config = database.config();
    config.user("no_rights_2");
    let mut client = config.connect(postgres::NoTls).unwrap();
    let error = Migrator::new(EXAMPLE)
        .history_table("audit", "schema_migrations")
        .run(&mut client)
        .unwrap_err();

    let line = error.to_string();
    assert_eq!(
        line,
        "database error while taking the migration lock and creating the history tables"
    );
    let mut chain = Vec::new();
    let mut cause = std::error::Error::source(&error);
    while let Some(next) = cause {
        chain.push(next.to_string());
        cause = next.source();
    }
    let mentions = chain
        .iter()
        .filter(|text| text.contains("permission denied for database"))
        .count();
    assert_eq!(mentions, 1, "the server's message appears once: {chain:?}");
    assert_eq!(error.sqlstate(), Some(SqlState::INSUFFICIENT_PRIVILEGE));

    let failed = Migrator::new(&five(true)).run(&mut admin).unwrap_err();
    assert_eq!(
        failed.to_string(),
        "migration 3 (c) failed at 003_c.sql:3:13: relation \"missing_table\" does not exist (SQLSTATE 42P01)"
    );
    assert!(!failed.to_string().contains('\n'));
    assert!(failed
        .render()
        .to_string()
        .starts_with("error: migration 3 (c) failed"));
    assert_eq!(failed.sqlstate(), Some(SqlState::UNDEFINED_TABLE));

    let setting = Migrator::new(&five(false))
        .history_table("", "schema_migrations")
        .run(&mut admin)
        .unwrap_err();
    assert!(
        matches!(setting, Error::HistoryTableName { .. }),
        "{setting}"
    );
    assert_eq!(
        setting.render().to_string(),
        format!("error: invalid migrator setting: {setting}")
    );
}
