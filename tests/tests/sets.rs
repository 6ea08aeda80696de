//! Migration sets: an application's migrations (this crate's) and a library crate's (the
//! `migrate-fixture-queue` fixture, which embeds its own), with overlapping version numbers,
//! each with its own history table, and a requirement from one set on the other.

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migration, MigrationSet, Migrator, State};
use migrate_test_support::files::directory;

/// The application: 002 needs the queue's 002 (`-- migrate:requires queue:2`).
static APP: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/sets/app");
/// What a job-queue library crate ships, embedded by that crate from its own directory:
/// versions 1 and 2 too.
static QUEUE: &[Migration] = migrate_fixture_queue::MIGRATIONS;

fn versions(client: &mut postgres::Client, table: &str) -> Vec<i64> {
    client
        .query(
            &format!("SELECT version FROM {table} ORDER BY version"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn the_directive_names_the_other_set() {
    let required: Vec<(&str, i64)> = APP[1].requires_sets().collect();
    assert_eq!(required, [("queue", 2)]);
}

#[test]
fn two_sets_with_the_same_versions_apply_in_the_order_their_requirement_allows() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    // The application is given first: its 002 waits until the queue's 002 is applied.
    let sets = Migrator::sets([
        MigrationSet::new("app", APP),
        MigrationSet::new("queue", QUEUE),
    ]);
    let reports = sets.run(&mut client).unwrap();
    let applied: Vec<(String, Vec<i64>)> = reports
        .iter()
        .map(|(set, report)| {
            (
                set.clone(),
                report.applied.iter().map(|a| a.version).collect(),
            )
        })
        .collect();
    assert_eq!(
        applied,
        [
            ("app".to_owned(), vec![1, 2]),
            ("queue".to_owned(), vec![1, 2])
        ]
    );
    // Each set has its own history; versions 1 and 2 are in both.
    assert_eq!(versions(&mut client, "app_schema_migrations"), [1, 2]);
    assert_eq!(versions(&mut client, "queue_schema_migrations"), [1, 2]);
    // The order really was queue 2 before app 2: app 2's index is on the queue's column.
    let order: Vec<String> = client
        .query(
            "SELECT s || ':' || version FROM (SELECT 'app' AS s, version, applied_at FROM app_schema_migrations UNION ALL SELECT 'queue', version, applied_at FROM queue_schema_migrations) h ORDER BY applied_at",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let position = |name: &str| order.iter().position(|o| o == name).unwrap();
    assert!(position("queue:2") < position("app:2"), "{order:?}");

    // Status, grouped by set.
    let status = sets.status(&mut client).unwrap();
    let grouped: Vec<(String, Vec<(i64, State)>)> = status
        .iter()
        .map(|(set, status)| {
            (
                set.clone(),
                status
                    .entries
                    .iter()
                    .map(|e| (e.version, e.state))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        grouped,
        [
            (
                "app".to_owned(),
                vec![(1, State::Applied), (2, State::Applied)]
            ),
            (
                "queue".to_owned(),
                vec![(1, State::Applied), (2, State::Applied)]
            ),
        ]
    );
    assert!(sets
        .check(&mut client)
        .unwrap()
        .iter()
        .all(|(_, readiness)| readiness.is_ready()));
    // Again: nothing to do.
    let again = sets.run(&mut client).unwrap();
    assert!(again.iter().all(|(_, report)| report.applied.is_empty()));
}

#[test]
fn a_requirement_on_a_set_not_given_is_refused_before_anything_runs() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let sets = Migrator::sets([MigrationSet::new("app", APP)]);
    let error = sets.run(&mut client).unwrap_err();
    assert!(matches!(
        &error,
        Error::UnmetSetRequirement { requires_set, requires_version: 2, known: false, .. } if requires_set == "queue"
    ));
    let rendered = error.render().to_string();
    assert!(
        rendered
            .contains("error: app:2 requires queue:2, which no set given has; nothing was applied"),
        "{rendered}"
    );
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing ran, not even the history table");
    // What the help says: give that set too.
    let sets = Migrator::sets([
        MigrationSet::new("app", APP),
        MigrationSet::new("queue", QUEUE),
    ]);
    sets.run(&mut client).unwrap();
}

#[test]
fn sets_that_wait_for_each_other_stop_with_what_could_run_applied() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let a_dir = directory(&[
        ("001_a.sql", "CREATE TABLE a1 (id int);\n"),
        (
            "002_a.sql",
            "-- migrate:requires b:2\nCREATE TABLE a2 (id int);\n",
        ),
    ]);
    let b_dir = directory(&[
        ("001_b.sql", "CREATE TABLE b1 (id int);\n"),
        (
            "002_b.sql",
            "-- migrate:requires a:2\nCREATE TABLE b2 (id int);\n",
        ),
    ]);
    let a = migrate_runtime::source::read_dir(a_dir.path(), ".")
        .unwrap()
        .migrations;
    let b = migrate_runtime::source::read_dir(b_dir.path(), ".")
        .unwrap()
        .migrations;
    let sets = Migrator::sets([MigrationSet::new("a", &a), MigrationSet::new("b", &b)]);
    let error = sets.run(&mut client).unwrap_err();
    let rendered = error.render().to_string();
    assert!(
        rendered.contains("error: a:2 requires b:2, which cannot be applied before it: the sets wait for each other"),
        "{rendered}"
    );
    assert_eq!(versions(&mut client, "a_schema_migrations"), [1]);
    assert_eq!(versions(&mut client, "b_schema_migrations"), [1]);
}

fn sets_app(url: &str, args: &[&str]) -> migrate_test_support::process::Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sets_app"))
        .env("DATABASE_URL", url)
        .env_remove("MIGRATE_ENV")
        .args(args)
        .output()
        .unwrap();
    migrate_test_support::process::Run::of(&output)
}

#[test]
fn the_command_line_works_on_every_set() {
    let database = TestServer::shared().create_database().unwrap();
    let url = database.url();
    let run = sets_app(&url, &["migrate", "status", "--exit-code"]);
    assert_eq!(
        run.code,
        3,
        "both sets have pending migrations: {}",
        run.all()
    );
    assert!(
        run.stderr.contains("set app:") && run.stderr.contains("set queue:"),
        "{}",
        run.stderr
    );
    let run = sets_app(&url, &["migrate", "check"]);
    assert_eq!(run.code, 4, "{}", run.all());

    let run = sets_app(&url, &["migrate", "up"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.stdout.matches("2 migration(s) applied").count(),
        2,
        "{}",
        run.stdout
    );
    let mut client = database.client().unwrap();
    assert_eq!(versions(&mut client, "app_schema_migrations"), [1, 2]);
    assert_eq!(versions(&mut client, "queue_schema_migrations"), [1, 2]);

    let run = sets_app(&url, &["migrate", "status"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout.matches("0 pending").count(), 2, "{}", run.stdout);
    assert!(run.stdout.contains("welcome_jobs"), "{}", run.stdout);
    assert!(run.stdout.contains("add_priority"), "{}", run.stdout);
    assert_eq!(sets_app(&url, &["migrate", "check"]).code, 0);
    // With --json, one document for all the sets, each set's result under its name.
    let run = sets_app(&url, &["migrate", "status", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let document: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("not one JSON document ({error}): {}", run.stdout));
    let sets = document["sets"].as_array().expect("a list of sets");
    let names: Vec<&str> = sets
        .iter()
        .map(|set| set["set"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "queue"]);
    assert!(
        sets.iter().all(|set| set["result"].is_object()),
        "{document:#}"
    );
    assert_ne!(
        sets[0]["result"], sets[1]["result"],
        "each set's own status"
    );
    // A flag that names one set's versions is refused, with why.
    let run = sets_app(&url, &["migrate", "up", "--to", "1"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains(
            "with several migration sets, `up` takes --phase and --allow-out-of-order only"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_set_that_fails_with_json_still_prints_its_error_document() {
    // Nothing listens on port 1: the first set's command fails before printing anything.
    let run = sets_app(
        "postgresql://postgres@127.0.0.1:1/none",
        &["migrate", "status", "--json"],
    );
    assert_ne!(run.code, 0, "{}", run.all());
    let document: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("not one JSON document ({error}): {}", run.all()));
    assert!(document["error"]["kind"].is_string(), "{document:#}");
}
