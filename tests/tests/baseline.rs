//! Adopting a database whose schema already exists: `baseline` after building it by hand,
//! and importing the history another tool left behind.

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migration, Migrator, OtherTool};
use migrate_tests::{five, scalar};

static DIESEL: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/diesel");

fn versions_applied(client: &mut postgres::Client) -> Vec<i64> {
    client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn baseline_on_a_hand_built_schema_then_run_applies_only_newer() {
    let set = five(false);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    // What migrations 1 to 3 would have created, made by hand.
    client
        .batch_execute("CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE TABLE c (id int);")
        .unwrap();

    let recorded = Migrator::new(&set)
        .baseline(&mut client, 3, "schema restored from the legacy dump")
        .unwrap();
    assert_eq!(recorded, [1, 2, 3]);
    let report = Migrator::new(&set).run(&mut client).unwrap();
    assert_eq!(
        report.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [4, 5]
    );

    let baseline_rows = client
        .query(
            "SELECT version, note, executed_by FROM schema_migrations_history WHERE action = 'baseline' ORDER BY version",
            &[],
        )
        .unwrap();
    assert_eq!(baseline_rows.len(), 3);
    assert_eq!(
        baseline_rows[0].get::<_, String>(1),
        "baseline up to 3: schema restored from the legacy dump"
    );
    assert_eq!(baseline_rows[0].get::<_, String>(2), "postgres");
    // A second baseline over recorded versions records nothing new.
    assert!(Migrator::new(&set)
        .baseline(&mut client, 3, "again")
        .unwrap()
        .is_empty());
}

#[test]
fn baseline_needs_a_version_the_binary_has() {
    let set = five(false);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let error = Migrator::new(&set)
        .baseline(&mut client, 42, "typo")
        .unwrap_err();
    assert_eq!(
        error.render().to_string(),
        "error: invalid migrator setting: baseline 42: no migration in this binary has that version"
    );
}

#[test]
fn baseline_from_diesel_records_exactly_what_diesel_applied() {
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    // diesel's own history table layout, and the schema of the two migrations it ran.
    client
        .batch_execute(
            "CREATE TABLE __diesel_schema_migrations (
                 version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
             );
             INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000000'), ('20190311123456');
             CREATE FUNCTION diesel_set_updated_at() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql;
             CREATE TABLE posts (id serial PRIMARY KEY, title text NOT NULL);",
        )
        .unwrap();

    let imported = Migrator::new(DIESEL)
        .baseline_from(&mut client, OtherTool::Diesel)
        .unwrap();
    assert_eq!(imported, [0, 201_903_111_234_560_000]);
    assert_eq!(versions_applied(&mut client), imported);

    let report = Migrator::new(DIESEL).run(&mut client).unwrap();
    let names: Vec<&str> = report.applied.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["create_tags", "index_posts"]);
    let note: String = client
        .query_one(
            "SELECT DISTINCT note FROM schema_migrations_history WHERE action = 'baseline'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(note, "imported from __diesel_schema_migrations");
}

#[test]
fn baseline_from_sqlx_skips_failed_rows_and_refuses_unknown_versions() {
    let set = five(false);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute(
            "CREATE TABLE _sqlx_migrations (
                 version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                 installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
                 checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL
             );
             INSERT INTO _sqlx_migrations VALUES
                 (1, 'a', now(), true, '\\x00', 1), (2, 'b', now(), true, '\\x00', 1), (3, 'c', now(), false, '\\x00', 1);",
        )
        .unwrap();
    let imported = Migrator::new(&set)
        .baseline_from(&mut client, OtherTool::Sqlx)
        .unwrap();
    assert_eq!(imported, [1, 2]);

    // Into a non-empty history: refused.
    let error = Migrator::new(&set)
        .baseline_from(&mut client, OtherTool::Sqlx)
        .unwrap_err();
    assert!(
        error.render().to_string().contains("needs it empty"),
        "{error}"
    );

    // A version the binary lacks: refused, nothing recorded.
    let other = TestServer::shared().create_database().unwrap();
    let mut client = other.client().unwrap();
    client
        .batch_execute(
            "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255));
             INSERT INTO refinery_schema_history VALUES (1, 'a', '', ''), (9, 'gone', '', '');",
        )
        .unwrap();
    let error = Migrator::new(&set)
        .baseline_from(&mut client, OtherTool::Refinery)
        .unwrap_err();
    assert!(
        matches!(error, Error::MissingFromBinary(ref v) if v[0].0 == 9),
        "{error}"
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        0
    );
    let error = Migrator::new(&set)
        .baseline_from(&mut client, OtherTool::Diesel)
        .unwrap_err();
    assert!(
        error
            .render()
            .to_string()
            .contains("no `__diesel_schema_migrations` table"),
        "{error}"
    );
}

/// dbmate's and golang-migrate's `schema_migrations` under our default name: every entry point
/// says whose table it is; under another history table name they import as their tools meant.
#[test]
fn baseline_from_dbmate_and_golang_migrate_under_another_history_name() {
    let set = five(false);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute(
            "CREATE TABLE a (id int); CREATE TABLE b (id int);
             CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY);
             INSERT INTO schema_migrations VALUES ('1'), ('2');",
        )
        .unwrap();
    let errors = [
        Migrator::new(&set).run(&mut client).unwrap_err(),
        Migrator::new(&set).status(&mut client).unwrap_err(),
        Migrator::new(&set).history(&mut client).unwrap_err(),
        Migrator::new(&set).applied(&mut client).unwrap_err(),
        Migrator::new(&set)
            .baseline_from(&mut client, OtherTool::Dbmate)
            .unwrap_err(),
    ];
    for error in &errors {
        assert!(
            matches!(
                error,
                Error::ForeignHistoryTable { tool: Some(OtherTool::Dbmate), columns, .. }
                    if columns == &["version character varying(128)"]
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "public.schema_migrations is not this runtime's history table: it looks like dbmate's"
        );
    }
    let ours = Migrator::new(&set).history_table("public", "migrate_history");
    assert_eq!(
        ours.baseline_from(&mut client, OtherTool::Dbmate).unwrap(),
        [1, 2]
    );
    let applied: Vec<i64> = ours
        .run(&mut client)
        .unwrap()
        .applied
        .iter()
        .map(|a| a.version)
        .collect();
    assert_eq!(applied, [3, 4, 5]);

    // golang-migrate: only the latest version, and everything up to it counts.
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    client
        .batch_execute(
            "CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE TABLE c (id int);
             CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (3, true);",
        )
        .unwrap();
    let ours = Migrator::new(&set).history_table("public", "migrate_history");
    let error = ours
        .baseline_from(&mut client, OtherTool::GolangMigrate)
        .unwrap_err();
    assert!(
        matches!(error, Error::OtherHistoryDirty { version: 3 }),
        "{error:?}"
    );
    // Read as dbmate's, the table is refused for its shape.
    let error = ours
        .baseline_from(&mut client, OtherTool::Dbmate)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "schema_migrations: it does not have dbmate's columns (it has: version bigint, dirty boolean)"
    );
    client
        .batch_execute("UPDATE schema_migrations SET dirty = false")
        .unwrap();
    assert_eq!(
        ours.baseline_from(&mut client, OtherTool::GolangMigrate)
            .unwrap(),
        [1, 2, 3]
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM migrate_history"),
        3
    );
}
