//! down, down_to, redo, plan, validate, status, history and rehearse against PostgreSQL.

use migrate_runtime::testing::TestServer;
use migrate_runtime::{ActionStatus, Error, Migrator, Rehearsed, State};
use migrate_tests::{five, migrations, scalar, tables};

fn versions(report: &[migrate_runtime::AppliedReport]) -> Vec<i64> {
    report.iter().map(|a| a.version).collect()
}

/// Three reversible migrations and one without DOWN on top.
fn reversible_then_irreversible() -> Vec<migrate_runtime::Migration> {
    migrations(&[
        (
            "001_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        (
            "002_b.sql",
            "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n",
        ),
        (
            "003_c.sql",
            "-- migrate:up\nCREATE TABLE c (id int);\n-- migrate:down\nDROP TABLE c;\n",
        ),
        ("004_d.sql", "CREATE TABLE d (id int);\n"),
    ])
}

#[test]
fn down_reverts_newest_first_and_records_rollbacks() {
    let set = reversible_then_irreversible();
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(&set[..3]);
    migrator.run(&mut client).unwrap();

    let report = migrator.down(&mut client, 2).unwrap();
    assert_eq!(versions(&report.reverted), [3, 2]);
    assert_eq!(
        tables(&mut client, "public"),
        ["a", "schema_migrations", "schema_migrations_history"]
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        1
    );
    let rollbacks = scalar(&mut client, "SELECT count(*) FROM schema_migrations_history WHERE action = 'rollback' AND status = 'success'");
    assert_eq!(rollbacks, 2);
    // Applying again brings them back.
    assert_eq!(
        versions(&migrator.run(&mut client).unwrap().applied),
        [2, 3]
    );
    let report = migrator.down_to(&mut client, 1).unwrap();
    assert_eq!(versions(&report.reverted), [3, 2]);
}

#[test]
fn down_refuses_an_irreversible_migration_before_touching_anything() {
    let set = reversible_then_irreversible();
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(&set);
    migrator.run(&mut client).unwrap();

    let error = migrator.down(&mut client, 2).unwrap_err();
    assert!(
        matches!(error, Error::Irreversible { version: 4, .. }),
        "{error}"
    );
    assert!(
        error.render().to_string().contains(
            "migration 4 (d) cannot be reverted: it has no DOWN section; nothing was reverted"
        ),
        "{error}"
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        4
    );
    assert_eq!(tables(&mut client, "public").len(), 6);
}

#[test]
fn a_failing_down_keeps_the_migration_applied() {
    let set = migrations(&[("001_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\nDROP TABLE nope;\n")]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(&set);
    migrator.run(&mut client).unwrap();
    let error = migrator.down(&mut client, 1).unwrap_err();
    let message = error.render().to_string();
    assert!(
        message
            .starts_with("error: reverting migration 1 (a) failed: table \"nope\" does not exist"),
        "{message}"
    );
    assert!(
        message.contains("nothing of the revert was kept; the migration stays applied"),
        "{message}"
    );
    assert!(tables(&mut client, "public").contains(&"a".to_owned()));
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        1
    );
}

#[test]
fn redo_reverts_and_reapplies() {
    let set = five(false);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(&set[..1]);
    migrator.run(&mut client).unwrap();
    client.batch_execute("INSERT INTO a VALUES (1)").unwrap();
    let report = migrator.redo(&mut client, 1).unwrap();
    assert_eq!(
        (versions(&report.reverted), versions(&report.applied)),
        (vec![1], vec![1])
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM a"),
        0,
        "the table was recreated"
    );
    let error = migrator.redo(&mut client, 5).unwrap_err();
    assert!(
        error
            .render()
            .to_string()
            .contains("redo 5: that version is not applied"),
        "{error}"
    );
}

#[test]
fn plan_validate_and_status_describe_without_changing_anything() {
    let all = five(false);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let plan = Migrator::new(&all).plan(&mut client).unwrap();
    assert_eq!(
        plan.pending.iter().map(|m| m.version()).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(plan.refusal.is_none());
    assert!(
        tables(&mut client, "public").is_empty(),
        "plan creates nothing"
    );

    let without_third: Vec<_> = all.iter().filter(|m| m.version() != 3).cloned().collect();
    Migrator::new(&without_third).run(&mut client).unwrap();
    let plan = Migrator::new(&all).plan(&mut client).unwrap();
    assert!(matches!(
        plan.refusal,
        Some(Error::OutOfOrder { version: 3, .. })
    ));
    assert!(Migrator::new(&all).validate(&mut client).is_err());
    assert!(Migrator::new(&without_third).validate(&mut client).is_ok());

    client.batch_execute("UPDATE schema_migrations SET checksum = 'sha256:x' WHERE version = 2; INSERT INTO schema_migrations (version, name, checksum) VALUES (9, 'gone', 'sha256:y')").unwrap();
    let status = Migrator::new(&all).status(&mut client).unwrap();
    let states: Vec<(i64, State)> = status
        .entries
        .iter()
        .map(|e| (e.version, e.state))
        .collect();
    assert_eq!(
        states,
        [
            (1, State::Applied),
            (2, State::ChecksumDiffers),
            (3, State::OutOfOrder),
            (4, State::Applied),
            (5, State::Applied),
            (9, State::MissingFromBinary)
        ]
    );
    assert_eq!(
        status.entries[0].applied.as_ref().unwrap().applied_by,
        "postgres"
    );
}

#[test]
fn status_shows_environment_filters_and_invalid_indexes() {
    let set = migrations(&[
        (
            "001_t.sql",
            "CREATE TABLE t (b int);\nINSERT INTO t VALUES (1), (1);\n",
        ),
        (
            "002_prod.sql",
            "-- migrate:env production\nINSERT INTO t VALUES (2);\n",
        ),
        (
            "003_idx.sql",
            "-- migrate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY t_b ON t (b);\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(&set).run(&mut client).unwrap_err();
    let status = Migrator::new(&set).status(&mut client).unwrap();
    let states: Vec<State> = status.entries.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [State::Applied, State::FilteredByEnvironment, State::Failed]
    );
    assert_eq!(status.invalid_indexes, ["public.t_b"]);
}

#[test]
fn history_lists_every_action() {
    let set = reversible_then_irreversible();
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(&set[..2]).environment("staging");
    migrator.run(&mut client).unwrap();
    migrator.down(&mut client, 1).unwrap();
    let history = migrator.history(&mut client).unwrap();
    let actions: Vec<(String, i64)> = history
        .iter()
        .map(|a| (a.action.to_string(), a.version))
        .collect();
    assert_eq!(
        actions,
        [
            ("apply".to_owned(), 1),
            ("apply".to_owned(), 2),
            ("rollback".to_owned(), 2)
        ]
    );
    assert!(history
        .iter()
        .all(|a| a.environment.as_deref() == Some("staging") && a.status == ActionStatus::Success));
}

#[test]
fn rehearsal_reports_the_failure_and_leaves_the_database_untouched() {
    let set = migrations(&[
        ("001_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "002_idx.sql",
            "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
        ),
        (
            "003_b.sql",
            "CREATE TABLE b (id int);\nINSERT INTO b SELECT id FROM a_typo;\n",
        ),
        ("004_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let outcomes = Migrator::new(&set).rehearse(&mut client).unwrap();
    let summary: Vec<(i64, &str)> = outcomes
        .iter()
        .map(|(m, outcome)| {
            let word = match outcome {
                Rehearsed::WouldApply(_) => "ok",
                Rehearsed::WouldFail(_) => "fail",
                Rehearsed::NotTestable => "untestable",
                Rehearsed::NotReached => "not reached",
                _ => "other",
            };
            (m.version(), word)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "ok"),
            (2, "untestable"),
            (3, "fail"),
            (4, "not reached")
        ]
    );
    let Rehearsed::WouldFail(failure) = &outcomes[2].1 else {
        unreachable!()
    };
    assert_eq!(
        (failure.path.as_str(), failure.line, failure.column),
        ("003_b.sql", 2, Some(30))
    );
    assert!(
        tables(&mut client, "public").is_empty(),
        "nothing left behind, not even the history tables"
    );
}
