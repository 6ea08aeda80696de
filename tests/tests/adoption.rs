//! Histories that other tools and other branches wrote, adopted as they are (issue 15): each
//! pattern against a real PostgreSQL, with the message a user sees.

use std::path::Path;

use migrate_runtime::source::read_dir;
use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migration, Migrator, Repair, State};
use migrate_tests::{migrations, scalar};

/// Branch A applied `004_add_a_col` to a shared database; branch B builds with its own
/// `004_add_b_col`. B's run is a version conflict, never an edited file whose checksum could
/// be accepted; doing what the help says (bring A's migration in, renumber B's) works.
#[test]
fn the_same_version_on_two_branches_is_a_conflict_not_an_edit() {
    let base = ("001_a.sql", "CREATE TABLE t (id int);\n");
    let branch_a = migrations(&[base, ("004_add_a_col.sql", "ALTER TABLE t ADD a int;\n")]);
    let branch_b = migrations(&[base, ("004_add_b_col.sql", "ALTER TABLE t ADD b int;\n")]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    Migrator::new(&branch_a).run(&mut client).unwrap();

    let error = Migrator::new(&branch_b).run(&mut client).unwrap_err();
    assert!(
        matches!(&error, Error::VersionConflict { version: 4, applied_name, name, .. }
            if applied_name == "add_a_col" && name == "add_b_col"),
        "{error}"
    );
    let shown = error.render().to_string();
    assert!(
        shown.starts_with("error: version 4 is two different migrations: the database applied `add_a_col`, this binary has `add_b_col`\n  --> 004_add_b_col.sql"),
        "{shown}"
    );
    assert!(!shown.contains("accept-checksum"), "{shown}");
    assert!(
        shown.contains("help: bring `add_a_col` (version 4) into this build, and give `add_b_col` a version above the highest applied one"),
        "{shown}"
    );
    let status = Migrator::new(&branch_b).status(&mut client).unwrap();
    assert_eq!(status.entries[1].state, State::VersionConflict);

    // Accepting the checksum would record add_b_col as applied without running it: refused.
    let refused = Migrator::new(&branch_b)
        .repair(&mut client, 4, Repair::AcceptChecksum, "same version")
        .unwrap_err();
    assert!(
        matches!(refused, Error::VersionConflict { .. }),
        "{refused}"
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'b'"
        ),
        0
    );

    // The help, done: both migrations in the build, B's renumbered above the highest applied.
    let merged = migrations(&[
        base,
        ("004_add_a_col.sql", "ALTER TABLE t ADD a int;\n"),
        ("005_add_b_col.sql", "ALTER TABLE t ADD b int;\n"),
    ]);
    let report = Migrator::new(&merged).run(&mut client).unwrap();
    let applied: Vec<(i64, &str)> = report
        .applied
        .iter()
        .map(|a| (a.version, a.name.as_str()))
        .collect();
    assert_eq!(applied, [(5, "add_b_col")]);
}

static DIESEL_FREE_TEXT: &[Migration] =
    migrate_macros::embed_migrations!("fixtures/adopt/diesel_free_text");
static GOLANG_MIGRATE: &[Migration] =
    migrate_macros::embed_migrations!("fixtures/adopt/golang_migrate");

fn read_at_run_time(dir: &str) -> Vec<Migration> {
    match read_dir(Path::new(env!("CARGO_MANIFEST_DIR")), dir) {
        Ok(loaded) => loaded.migrations,
        Err(problems) => panic!("{problems}"),
    }
}

fn columns(client: &mut postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// diesel names the part after the version freely (spaces, dashes, capitals); such a
/// directory used to be skipped without a word, and its column was missing.
#[test]
fn diesel_directories_with_free_text_names_are_migrations() {
    assert_eq!(
        DIESEL_FREE_TEXT,
        read_at_run_time("fixtures/adopt/diesel_free_text").as_slice()
    );
    let names: Vec<&str> = DIESEL_FREE_TEXT.iter().map(|m| m.name()).collect();
    assert_eq!(
        names,
        [
            "diesel_initial_setup",
            "Add email notifications to owners",
            "add-owner-Index"
        ]
    );
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(DIESEL_FREE_TEXT);
    let report = migrator.run(&mut client).unwrap();
    assert_eq!(report.applied.len(), 3);
    assert_eq!(
        columns(&mut client, "owners"),
        ["id", "name", "updated_at", "email_notifications"]
    );
    let recorded: Vec<String> = client
        .query("SELECT name FROM schema_migrations ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(recorded, names);
    // Everything back down, diesel's version 0 included.
    let reverted = migrator.down_to(&mut client, i64::MIN).unwrap();
    assert_eq!(reverted.reverted.len(), 3);
    assert!(columns(&mut client, "owners").is_empty());
}

/// A directory holding an `up.sql` whose name is not a migration's is an error, never skipped.
#[test]
fn a_diesel_directory_that_cannot_be_read_is_an_error_not_skipped() {
    let problems = read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        "fixtures/invalid/diesel_unreadable_dir",
    )
    .unwrap_err()
    .to_string();
    assert!(
        problems.contains("fixtures/invalid/diesel_unreadable_dir/backfill_owners: `backfill_owners/` holds an `up.sql`, but its name is not `{version}_{name}`"),
        "{problems}"
    );
}

/// golang-migrate pairs an `.up.sql` with the `.down.sql` of the same version even when the
/// names differ; the migration is named after its up file.
#[test]
fn golang_migrate_pairs_up_and_down_by_version() {
    assert_eq!(
        GOLANG_MIGRATE,
        read_at_run_time("fixtures/adopt/golang_migrate").as_slice()
    );
    let metadata = &GOLANG_MIGRATE[1];
    assert_eq!((metadata.version(), metadata.name()), (30, "add_metadata"));
    assert_eq!(
        metadata.down().map(|down| down.path()),
        Some("fixtures/adopt/golang_migrate/30_drop_metadata.down.sql")
    );
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(GOLANG_MIGRATE);
    migrator.run(&mut client).unwrap();
    assert_eq!(
        columns(&mut client, "documents"),
        ["id", "body", "metadata"]
    );
    migrator.down(&mut client, 1).unwrap();
    assert_eq!(columns(&mut client, "documents"), ["id", "body"]);
}

/// An older history kept under our default name, dropped by a later migration: refused before
/// anything runs, with the way out; the way out works.
#[test]
fn a_migration_dropping_a_table_named_like_our_history_is_refused_before_anything_runs() {
    let set = migrations(&[
        ("001_t.sql", "CREATE TABLE t (id int);\n"),
        (
            "002_forget_old_tool.sql",
            "-- the old tool's bookkeeping\nDROP TABLE IF EXISTS schema_migrations;\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let error = Migrator::new(&set).run(&mut client).unwrap_err();
    assert!(
        matches!(&error, Error::TouchesHistoryTable { version: 2, line: 2, table, .. } if table == "public.schema_migrations"),
        "{error}"
    );
    let shown = error.render().to_string();
    assert!(
        shown.contains("--> 002_forget_old_tool.sql:2\n   = note: nothing was run"),
        "{shown}"
    );
    assert!(
        shown.contains("help: keep this runtime's history under another name: `migrate --history-table migrate_history up`"),
        "{shown}"
    );
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
        ),
        0,
        "nothing ran"
    );
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM schema_migrations"),
        0
    );

    // The help, from Rust.
    let elsewhere = Migrator::new(&set).history_table("public", "migrate_history");
    assert_eq!(elsewhere.run(&mut client).unwrap().applied.len(), 2);
    assert_eq!(
        scalar(&mut client, "SELECT count(*) FROM migrate_history"),
        2
    );
}

static DIESEL_WITH_BACKFILL: &[Migration] =
    migrate_macros::embed_migrations!("fixtures/adopt/diesel_with_backfill");

/// A hand-run script at the top of a diesel directory is an error by default (it may be a
/// misplaced migration), whose help names `.migrateignore`; listed there, it is left alone.
#[test]
fn a_stray_script_is_an_error_until_listed_in_migrateignore() {
    assert_eq!(DIESEL_WITH_BACKFILL.len(), 1);
    assert_eq!(
        DIESEL_WITH_BACKFILL,
        read_at_run_time("fixtures/adopt/diesel_with_backfill").as_slice()
    );

    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(migrations.join("2020-01-01-000000_create_accounts")).unwrap();
    std::fs::write(
        migrations.join("2020-01-01-000000_create_accounts/up.sql"),
        "CREATE TABLE accounts (id int);\n",
    )
    .unwrap();
    std::fs::write(
        migrations.join("data_fix.sql"),
        "UPDATE accounts SET id = id;\n",
    )
    .unwrap();
    let problems = read_dir(dir.path(), "migrations").unwrap_err().to_string();
    assert!(
        problems
            .contains("migrations/data_fix.sql: `data_fix.sql` is not a valid migration file name"),
        "{problems}"
    );
    assert!(
        problems.contains("or list it in `migrations/.migrateignore` to leave it alone"),
        "{problems}"
    );
    // What the help says.
    std::fs::write(migrations.join(".migrateignore"), "data_fix.sql\n").unwrap();
    let loaded = read_dir(dir.path(), "migrations").unwrap();
    assert_eq!(loaded.migrations.len(), 1);
    assert!(
        loaded.files.iter().any(|f| f.ends_with(".migrateignore")),
        "the build watches the ignore file: {:?}",
        loaded.files
    );

    std::fs::write(migrations.join(".migrateignore"), "data_fix[.sql\n").unwrap();
    let problems = read_dir(dir.path(), "migrations").unwrap_err().to_string();
    assert!(
        problems.contains("migrations/.migrateignore:1: `data_fix[.sql` is not a glob pattern"),
        "{problems}"
    );
}

static SQLX: &[Migration] = migrate_macros::embed_migrations!("fixtures/adopt/sqlx");

/// sqlx's descriptions are free text: spaces, dashes and capitals in up/down file names.
#[test]
fn sqlx_up_down_pairs_with_free_text_descriptions() {
    assert_eq!(SQLX, read_at_run_time("fixtures/adopt/sqlx").as_slice());
    let names: Vec<&str> = SQLX.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["create users", "add-Email"]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(SQLX);
    migrator.run(&mut client).unwrap();
    assert_eq!(columns(&mut client, "users"), ["id", "email"]);
    migrator.down_to(&mut client, i64::MIN).unwrap();
    assert!(columns(&mut client, "users").is_empty());
}

/// A DOWN that drops a column and adds it back at the end gives back the same columns in
/// another order: `verify` reports it as a difference of its own, which can be accepted.
#[test]
fn verify_sees_a_down_that_changes_column_order() {
    use migrate_runtime::verify::Verdict;
    let set = migrations(&[
        (
            "001_t.sql",
            "-- migrate:up\nCREATE TABLE t (id int, a int, b int);\n-- migrate:down\nDROP TABLE t;\n",
        ),
        (
            "002_drop_a.sql",
            "-- migrate:up\nALTER TABLE t DROP COLUMN a;\n-- migrate:down\nALTER TABLE t ADD COLUMN a int;\n",
        ),
    ]);
    let mut report = Migrator::new(&set)
        .verify(TestServer::shared(), false)
        .unwrap();
    let Verdict::DownReordersColumns(diff) = &report.migrations[1].verdict else {
        panic!("expected a column-order difference:\n{report}");
    };
    assert_eq!(
        diff.reordered,
        [(
            "public.t".to_owned(),
            "id, a, b".to_owned(),
            "id, b, a".to_owned()
        )]
    );
    assert!(!report.passed(false), "{report}");
    let shown = report.to_string();
    assert!(
        shown.contains("DOWN restores the columns in another order (002_drop_a.sql); --allow-column-order accepts it"),
        "{shown}"
    );
    assert!(shown.contains("  ~ column order of public.t (same columns)\n      before: id, a, b\n      after:  id, b, a"), "{shown}");
    report.allow_column_order = true;
    assert!(report.passed(false), "{report}");
}

static GOLANG_OWN_TRANSACTIONS: &[Migration] =
    migrate_macros::embed_migrations!("fixtures/adopt/golang_own_transactions");
static DIESEL_CONCURRENTLY: &[Migration] =
    migrate_macros::embed_migrations!("fixtures/adopt/diesel_concurrently");

fn index_is_valid(client: &mut postgres::Client, index: &str) -> bool {
    client
        .query(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
            &[&index],
        )
        .unwrap()
        .first()
        .is_some_and(|row| row.get(0))
}

/// Files written for golang-migrate (which never wraps a file in a transaction) run as it ran
/// them: `CREATE INDEX CONCURRENTLY` and a file with two `BEGIN; ... COMMIT;` blocks run
/// outside our transaction, and say why.
#[test]
fn imported_layouts_run_as_their_tool_ran_them() {
    assert_eq!(
        GOLANG_OWN_TRANSACTIONS,
        read_at_run_time("fixtures/adopt/golang_own_transactions").as_slice()
    );
    let inferred: Vec<(&str, Option<&str>)> = GOLANG_OWN_TRANSACTIONS
        .iter()
        .map(|m| (m.name(), m.up().inferred_no_transaction()))
        .collect();
    assert_eq!(
        inferred,
        [
            ("create_accounts", None),
            (
                "index_email",
                Some("`CREATE INDEX CONCURRENTLY` on line 2 cannot run inside a transaction block")
            ),
            (
                "backfill",
                Some("it manages its own transactions (`BEGIN` on line 1)")
            ),
        ]
    );
    assert!(!GOLANG_OWN_TRANSACTIONS[1]
        .down()
        .unwrap()
        .is_transactional());
    assert!(GOLANG_OWN_TRANSACTIONS[2]
        .down()
        .unwrap()
        .is_transactional());

    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(GOLANG_OWN_TRANSACTIONS);
    migrator.run(&mut client).unwrap();
    assert!(index_is_valid(&mut client, "accounts_email_idx"));
    assert_eq!(
        client
            .query_one("SELECT email FROM accounts WHERE id = 1", &[])
            .unwrap()
            .get::<_, String>(0),
        "b@example.com"
    );
    migrator.down_to(&mut client, i64::MIN).unwrap();
    assert_eq!(
        scalar(
            &mut client,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'accounts'"
        ),
        0
    );
}

/// A diesel migration without `metadata.toml` whose up and down use `CONCURRENTLY`.
#[test]
fn a_diesel_migration_that_forgot_its_metadata_runs_outside_a_transaction_both_ways() {
    assert_eq!(
        DIESEL_CONCURRENTLY,
        read_at_run_time("fixtures/adopt/diesel_concurrently").as_slice()
    );
    let index = &DIESEL_CONCURRENTLY[1];
    assert!(index.up().inferred_no_transaction().is_some());
    assert!(index.down().unwrap().inferred_no_transaction().is_some());
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let migrator = Migrator::new(DIESEL_CONCURRENTLY);
    migrator.run(&mut client).unwrap();
    assert!(index_is_valid(&mut client, "owners_name_idx"));
    migrator.down(&mut client, 1).unwrap();
    assert!(!index_is_valid(&mut client, "owners_name_idx"));
}

/// A statement failing inside a file's own transaction: the file's open transaction is ended,
/// so the failure is recorded; what the first block committed stays, as it would have.
#[test]
fn a_failure_inside_a_files_own_transaction_is_recorded() {
    let set = migrations(&[
        ("1_t.up.sql", "CREATE TABLE t (id int);\n"),
        (
            "2_fill.up.sql",
            "BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;\nBEGIN;\nINSERT INTO missing VALUES (1);\nCOMMIT;\n",
        ),
    ]);
    let database = TestServer::shared().create_database().unwrap();
    let mut client = database.client().unwrap();
    let error = Migrator::new(&set).run(&mut client).unwrap_err();
    let Error::MigrationFailed(failure) = &error else {
        panic!("{error}");
    };
    assert_eq!(
        (
            failure.version,
            failure.line,
            failure.statements.map(|s| (s.failed, s.total))
        ),
        (2, 5, Some((5, 6)))
    );
    let status: String = client
        .query_one(
            "SELECT status FROM schema_migrations WHERE version = 2",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "failed");
    assert_eq!(scalar(&mut client, "SELECT count(*) FROM t"), 1);
}

/// The type changes `lint` stays quiet about keep the table's files (no rewrite), checked by
/// `relfilenode` against PostgreSQL; the ones it fires on rewrite them.
#[test]
fn lint_is_quiet_exactly_about_type_changes_postgres_makes_without_a_rewrite() {
    use migrate_runtime::source::lint::lint_set;
    let table =
        "CREATE TABLE t (id int PRIMARY KEY, a varchar(20), n numeric(8, 2), ts timestamp);\n";
    let cases = [
        ("ALTER TABLE t ALTER COLUMN a TYPE varchar(50);", false),
        ("ALTER TABLE t ALTER COLUMN a TYPE text;", false),
        ("ALTER TABLE t ALTER COLUMN n TYPE numeric(12, 2);", false),
        (
            "SET timezone = 'UTC';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;",
            false,
        ),
        ("ALTER TABLE t ALTER COLUMN a TYPE varchar(10);", true),
        ("ALTER TABLE t ALTER COLUMN n TYPE numeric(12, 4);", true),
        (
            "SET timezone = 'Europe/Paris';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;",
            true,
        ),
        ("ALTER TABLE t ALTER COLUMN id TYPE bigint;", true),
    ];
    for (change, rewrites) in cases {
        let set = migrations(&[("001_t.sql", table), ("002_change.sql", change)]);
        let fired = lint_set(&set)
            .iter()
            .any(|finding| finding.rule.id == "column-type-rewrite");
        assert_eq!(fired, rewrites, "lint on {change:?}");

        let database = TestServer::shared().create_database().unwrap();
        let mut client = database.client().unwrap();
        Migrator::new(&set[..1]).run(&mut client).unwrap();
        client
            .batch_execute("INSERT INTO t VALUES (1, 'x', 1.5, '2020-01-01 10:00')")
            .unwrap();
        let file = |client: &mut postgres::Client| {
            scalar(
                client,
                "SELECT relfilenode::bigint FROM pg_class WHERE relname = 't'",
            )
        };
        let before = file(&mut client);
        Migrator::new(&set).run(&mut client).unwrap();
        assert_eq!(
            file(&mut client) != before,
            rewrites,
            "PostgreSQL on {change:?}"
        );
    }
}
