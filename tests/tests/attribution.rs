//! Every failure is blamed on the migration and the statement that failed, and on no other:
//! parse errors that make the server refuse a whole message, errors without a position, in
//! UP and DOWN sections, per-migration and grouped runs. Against a real PostgreSQL 15.

use migrate_runtime::testing::{TestDatabase, TestServer};
use migrate_runtime::{Error, Located, Migration, MigrationFailure, Migrator};
use migrate_tests::{migrations, numbered, numbered_tables, scalar};
use postgres::error::SqlState;
use postgres::Client;

/// PostgreSQL 15's grammar refuses this ("subquery in FROM must have an alias"): the server
/// parses a whole message before running any of it, so this refuses every migration sent
/// with it.
const PARSE_ERROR: &str = "SELECT * FROM (SELECT 1);";

/// Migration `at`'s SQL: its table, then a statement PostgreSQL refuses to parse (line 3,
/// column 15 of its file).
fn parse_error_at(at: usize) -> impl Fn(usize) -> Option<String> {
    move |v| (v == at).then(|| format!("-- t{v}\nCREATE TABLE t{v} (id int);\n{PARSE_ERROR}\n"))
}

fn fresh() -> (TestDatabase<'static>, Client) {
    let database = TestServer::shared().create_database().unwrap();
    let client = database.client().unwrap();
    (database, client)
}

/// Runs `set` grouped on a fresh database, expecting it to fail.
fn fail_grouped(set: &[Migration]) -> (TestDatabase<'static>, Client, Error) {
    let (database, mut client) = fresh();
    let error = Migrator::new(set)
        .grouped(true)
        .run(&mut client)
        .unwrap_err();
    (database, client, error)
}

fn failure(error: &Error) -> &MigrationFailure {
    match error {
        Error::MigrationFailed(failure) => failure,
        other => panic!("expected a migration failure, got {other}"),
    }
}

/// The history as `version status` for `schema_migrations`, and `action version status` for
/// the action log.
fn history(client: &mut Client) -> (Vec<i64>, Vec<String>) {
    let applied = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let actions = client
        .query(
            "SELECT action || ' ' || version || ' ' || status FROM schema_migrations_history ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    (applied, actions)
}

fn applies(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
    range.map(|v| format!("apply {v} success")).collect()
}

#[test]
fn a_parse_error_in_the_fiftieth_of_sixty_applies_the_forty_nine_before_it() {
    let broken = numbered(60, parse_error_at(50));
    let (_database, mut client) = fresh();
    let error = Migrator::new(&broken).run(&mut client).unwrap_err();

    let failure = failure(&error);
    assert_eq!(
        (
            failure.version,
            failure.line,
            failure.column,
            failure.sqlstate.as_str()
        ),
        (50, 3, Some(15), "42601")
    );
    assert_eq!(failure.located, Located::Position);
    assert!(
        error.render().to_string().contains("--> 0050_t50.sql:3:15"),
        "{error}"
    );
    assert_eq!(
        numbered_tables(&mut client),
        49,
        "what psql would have applied"
    );
    let (applied, actions) = history(&mut client);
    assert_eq!(applied, (1..=49).collect::<Vec<i64>>());
    let mut expected = applies(1..=49);
    expected.push("apply 50 failed".to_owned());
    assert_eq!(actions, expected, "no failure recorded against 1 to 49");

    // A rerun without the fix fails on 50 again, and blames nothing else.
    let again = Migrator::new(&broken).run(&mut client).unwrap_err();
    assert_eq!(failure_of(&again), (50, 3, Some(15)));
    let (_, actions) = history(&mut client);
    assert_eq!(actions.iter().filter(|a| a.ends_with("failed")).count(), 2);
    assert!(actions
        .iter()
        .filter(|a| a.ends_with("failed"))
        .all(|a| a == "apply 50 failed"));

    let fixed = numbered(60, |_| None);
    let report = Migrator::new(&fixed).run(&mut client).unwrap();
    let versions: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(versions, (50..=60).collect::<Vec<i64>>());
    assert_eq!(numbered_tables(&mut client), 60);
}

fn failure_of(error: &Error) -> (i64, u32, Option<u32>) {
    let failure = failure(error);
    (failure.version, failure.line, failure.column)
}

#[test]
fn a_parse_error_in_a_later_message_applies_everything_before_it() {
    // Messages hold 100 migrations: 170 is the 70th of the second.
    let broken = numbered(250, parse_error_at(170));
    let (_database, mut client) = fresh();
    let error = Migrator::new(&broken).run(&mut client).unwrap_err();
    assert_eq!(failure_of(&error), (170, 3, Some(15)));
    assert_eq!(numbered_tables(&mut client), 169);
    let (applied, actions) = history(&mut client);
    assert_eq!(applied, (1..=169).collect::<Vec<i64>>());
    let mut expected = applies(1..=169);
    expected.push("apply 170 failed".to_owned());
    assert_eq!(actions, expected);
}

#[test]
fn a_typo_in_the_second_of_two_pending_applies_the_first() {
    let set = migrations(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "002_b.sql",
            "CREATE TABLE b (id int);\nCREAT TABLE c (id int);\n",
        ),
    ]);
    let (_database, mut client) = fresh();
    let error = Migrator::new(&set).run(&mut client).unwrap_err();
    assert_eq!(failure_of(&error), (2, 2, Some(1)));
    let (applied, actions) = history(&mut client);
    assert_eq!(applied, [1]);
    assert_eq!(actions, ["apply 1 success", "apply 2 failed"]);
}

#[test]
fn a_runtime_error_before_a_parse_error_is_the_one_reported() {
    // psql would stop at 10 (its table does not exist) and never reach 50's parse error.
    let broken = numbered(60, |v| match v {
        10 => Some("INSERT INTO missing VALUES (1);\n".to_owned()),
        50 => Some(format!("{PARSE_ERROR}\n")),
        _ => None,
    });
    let (_database, mut client) = fresh();
    let error = Migrator::new(&broken).run(&mut client).unwrap_err();
    assert_eq!(failure_of(&error), (10, 1, Some(13)));
    assert_eq!(failure(&error).sqlstate, "42P01");
    let (applied, actions) = history(&mut client);
    assert_eq!(applied, (1..=9).collect::<Vec<i64>>());
    let mut expected = applies(1..=9);
    expected.push("apply 10 failed".to_owned());
    assert_eq!(actions, expected);
}

#[test]
fn grouped_a_parse_error_in_the_fiftieth_of_sixty_blames_only_it() {
    let broken = numbered(60, parse_error_at(50));
    let (_database, mut client, error) = fail_grouped(&broken);
    assert_eq!(failure_of(&error), (50, 3, Some(15)));
    assert_eq!(
        numbered_tables(&mut client),
        0,
        "the group is all or nothing"
    );
    let (applied, actions) = history(&mut client);
    assert!(applied.is_empty());
    assert_eq!(actions, ["apply 50 failed"]);

    let fixed = numbered(60, |_| None);
    let report = Migrator::new(&fixed)
        .grouped(true)
        .run(&mut client)
        .unwrap();
    assert_eq!(report.applied.len(), 60);
    assert_eq!(numbered_tables(&mut client), 60);
}

#[test]
fn grouped_a_parse_error_in_a_later_message_blames_only_it() {
    let broken = numbered(250, parse_error_at(170));
    let (_database, mut client, error) = fail_grouped(&broken);
    assert_eq!(failure_of(&error), (170, 3, Some(15)));
    assert!(
        error
            .render()
            .to_string()
            .contains("--> 0170_t170.sql:3:15"),
        "{error}"
    );
    assert_eq!(numbered_tables(&mut client), 0);
    let (applied, actions) = history(&mut client);
    assert!(applied.is_empty());
    assert_eq!(actions, ["apply 170 failed"]);
}

#[test]
fn grouped_a_runtime_error_before_a_parse_error_in_the_same_message_is_the_one_reported() {
    let broken = numbered(60, |v| match v {
        10 => Some("INSERT INTO missing VALUES (1);\n".to_owned()),
        50 => Some(format!("{PARSE_ERROR}\n")),
        _ => None,
    });
    let (_database, mut client, error) = fail_grouped(&broken);
    assert_eq!(failure_of(&error), (10, 1, Some(13)));
    let (applied, actions) = history(&mut client);
    assert!(applied.is_empty());
    assert_eq!(actions, ["apply 10 failed"]);
}

/// Five statements; the third fails without a position from the server.
const UNIQUE_VIOLATION_IN_THIRD: &str = "-- migrate:up
CREATE TABLE u (id int PRIMARY KEY);
INSERT INTO u VALUES (1);
INSERT INTO u
    VALUES (1);
INSERT INTO u VALUES (2);
CREATE TABLE after_u (id int);
";

#[test]
fn a_unique_violation_in_the_third_of_five_statements_names_its_line() {
    for grouped in [false, true] {
        let set = migrations(&[
            ("001_a.sql", "CREATE TABLE a (id int);\n"),
            ("002_u.sql", UNIQUE_VIOLATION_IN_THIRD),
            ("003_c.sql", "CREATE TABLE c (id int);\n"),
        ]);
        let (_database, mut client) = fresh();
        let error = Migrator::new(&set)
            .grouped(grouped)
            .run(&mut client)
            .unwrap_err();
        let failure = failure(&error);
        assert_eq!(
            (
                failure.version,
                failure.line,
                failure.column,
                failure.sqlstate.as_str()
            ),
            (2, 4, None, "23505"),
            "grouped: {grouped}"
        );
        assert_eq!(failure.located, Located::Statement);
        assert!(
            error.render().to_string().contains("--> 002_u.sql:4\n"),
            "{error}"
        );
        let (applied, actions) = history(&mut client);
        let tables = scalar(
            &mut client,
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('u', 'after_u', 'c')",
        );
        assert_eq!(tables, 0, "nothing of 002 or after it (grouped: {grouped})");
        if grouped {
            assert!(applied.is_empty());
            assert_eq!(actions, ["apply 2 failed"]);
        } else {
            assert_eq!(applied, [1]);
            assert_eq!(actions, ["apply 1 success", "apply 2 failed"]);
        }
    }
}

/// A DOWN whose third of five statements fails because other objects depend on a function.
const DEPENDENCY_ERROR_IN_THIRD_DOWN: &str = "-- migrate:up
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE TABLE uses_f (id int DEFAULT f());
-- migrate:down
DROP TABLE IF EXISTS nothing_here;
SELECT 1;
DROP FUNCTION f();
DROP TABLE uses_f;
DROP FUNCTION IF EXISTS f();
";

#[test]
fn a_dependency_error_in_the_third_of_five_down_statements_names_its_line() {
    let set = migrations(&[
        (
            "001_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        ("002_f.sql", DEPENDENCY_ERROR_IN_THIRD_DOWN),
    ]);
    let (_database, mut client) = fresh();
    let migrator = Migrator::new(&set);
    migrator.run(&mut client).unwrap();
    let error = migrator.down(&mut client, 1).unwrap_err();
    let failure = failure(&error);
    assert_eq!(
        (
            failure.version,
            failure.reverting,
            failure.line,
            failure.column,
            failure.sqlstate.as_str()
        ),
        (2, true, 7, None, "2BP01")
    );
    assert!(
        error.render().to_string().contains("--> 002_f.sql:7\n"),
        "{error}"
    );
    // Nothing of the revert was kept: both migrations stay applied, f() and uses_f exist.
    let (applied, actions) = history(&mut client);
    assert_eq!(applied, [1, 2]);
    assert_eq!(
        actions,
        ["apply 1 success", "apply 2 success", "rollback 2 failed"]
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM pg_proc WHERE proname = 'f'"
        ),
        1
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'uses_f'"
        ),
        1
    );

    // redo fails the same way, at the same line, and blames only 2.
    let error = migrator.redo(&mut client, 2).unwrap_err();
    assert_eq!(failure_of(&error), (2, 7, None));
    let (applied, _) = history(&mut client);
    assert_eq!(applied, [1, 2]);
}

#[test]
fn a_deferred_constraint_failing_at_commit_in_a_group_blames_no_migration() {
    let set = migrations(&[
        (
            "001_a.sql",
            "CREATE TABLE p (id int PRIMARY KEY);\nCREATE TABLE c (p int REFERENCES p DEFERRABLE INITIALLY DEFERRED);\n",
        ),
        ("002_b.sql", "INSERT INTO c VALUES (7);\n"),
    ]);
    let (_database, mut client, error) = fail_grouped(&set);
    // No statement fails on its own: the group's COMMIT does. Nothing is recorded as failed.
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert_eq!(error.sqlstate().as_ref().map(SqlState::code), Some("23503"));
    assert!(
        error
            .render()
            .to_string()
            .contains("migrations 1 (a) to 2 (b)"),
        "{error}"
    );
    let (applied, actions) = history(&mut client);
    assert!(applied.is_empty());
    assert!(actions.is_empty(), "{actions:?}");
}
