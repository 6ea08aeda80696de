//! Histories that other tools and other branches wrote, adopted as they are (issue 15): each
//! pattern against a real PostgreSQL, with the message a user sees.

use migrate_runtime::testing::TestServer;
use migrate_runtime::{Error, Migrator, Repair, State};
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
