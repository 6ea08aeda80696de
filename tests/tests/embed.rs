//! `embed_migrations!` and the runtime's directory reader see the same migrations, for the
//! example set and for every supported layout, and the details each layout carries survive.

use std::path::Path;

use migrate_runtime::source::{read_dir, statements};
use migrate_runtime::{Checksum, Migration};

static EXAMPLE: &[Migration] = migrate_macros::embed_migrations!("../migrations");
static UP_DOWN: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/updown");
static DIESEL: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/diesel");
static ROLLBACK: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/rollback");
static LF: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/lf");
static CRLF_WITH_BOM: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/crlf");
/// Sections over 64 KiB, which the macro embeds as slices of the files it includes.
static LARGE: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/large");

fn read_at_run_time(dir: &str) -> Vec<Migration> {
    match read_dir(Path::new(env!("CARGO_MANIFEST_DIR")), dir) {
        Ok(loaded) => loaded.migrations,
        Err(problems) => panic!("{problems}"),
    }
}

fn versions(migrations: &[Migration]) -> Vec<i64> {
    migrations.iter().map(Migration::version).collect()
}

#[test]
fn embedded_sets_equal_what_the_runtime_reads() {
    for (dir, embedded) in [
        ("../migrations", EXAMPLE),
        ("fixtures/valid/updown", UP_DOWN),
        ("fixtures/valid/diesel", DIESEL),
        ("fixtures/valid/rollback", ROLLBACK),
        ("fixtures/valid/lf", LF),
        ("fixtures/valid/crlf", CRLF_WITH_BOM),
        ("fixtures/valid/large", LARGE),
    ] {
        assert_eq!(embedded, read_at_run_time(dir).as_slice(), "{dir}");
    }
}

#[test]
fn large_sections_are_embedded_whole_and_exactly() {
    let rows = LARGE[0].up();
    assert!(
        rows.sql().len() > 64 * 1024,
        "the fixture must exercise the slice path"
    );
    // The BEGIN/COMMIT wrapper is dropped and nothing else: the body starts at the CREATE and
    // ends after the last row, multi-byte characters intact.
    assert!(
        rows.sql().trim_start().starts_with("CREATE TABLE big_rows"),
        "{}",
        &rows.sql()[..40]
    );
    assert!(rows
        .sql()
        .trim_end()
        .ends_with("(1399, 'ligne n°1399; déjà vue');"));
    assert_eq!(statements::split(rows.sql()).count(), 1401);
    let crlf = LARGE[1].up();
    assert!(crlf.sql().len() > 64 * 1024);
    assert_eq!(statements::split(crlf.sql()).count(), 2601);
    assert_eq!(
        LARGE[1].down().map(|down| down.sql().trim()),
        Some("DROP TABLE big_crlf;")
    );
}

#[test]
fn example_set_is_ordered_and_checked() {
    assert_eq!(versions(EXAMPLE), (1..=11).collect::<Vec<_>>());
    assert!(EXAMPLE
        .iter()
        .all(|m| m.path().starts_with("../migrations/")));
    assert!(EXAMPLE
        .iter()
        .all(|m| m.checksum().to_string().starts_with("sha256:")));
    let reversible = EXAMPLE.iter().filter(|m| m.down().is_some()).count();
    assert_eq!(
        reversible,
        EXAMPLE.len(),
        "every example migration has a DOWN section"
    );
}

#[test]
fn example_no_transaction_migration_runs_statement_by_statement() {
    let concurrent: Vec<&Migration> = EXAMPLE
        .iter()
        .filter(|m| !m.up().is_transactional())
        .collect();
    assert_eq!(concurrent.len(), 1);
    let migration = concurrent[0];
    let statements: Vec<_> = statements::split(migration.up().sql()).collect();
    assert!(statements.len() >= 3, "{statements:?}");
    assert!(statements
        .iter()
        .all(|s| s.text.to_ascii_uppercase().contains("CONCURRENTLY")));
    assert!(!migration.down().unwrap().is_transactional());
}

#[test]
fn example_wrapped_migration_loses_only_its_wrapper() {
    let wrapped = EXAMPLE
        .iter()
        .find(|m| m.name() == "create_audit_logs")
        .expect("the example set has a BEGIN/COMMIT-wrapped migration");
    for section in [wrapped.up(), wrapped.down().unwrap()] {
        let kinds: Vec<_> = statements::split(section.sql())
            .map(|s| statements::classify(s.text))
            .collect();
        assert!(!kinds.is_empty());
        assert!(
            kinds.iter().all(|k| !k.is_transaction_control()),
            "{kinds:?}"
        );
    }
}

#[test]
fn example_directives() {
    let lancio = EXAMPLE
        .iter()
        .find(|m| m.name() == "create_lancio_org")
        .unwrap();
    assert_eq!(lancio.environments().collect::<Vec<_>>(), ["production"]);
    assert!(lancio.applies_in("Production"));
    assert!(!lancio.applies_in("staging"));
    assert!(EXAMPLE.iter().any(|m| !m.requires().is_empty()));
    for migration in EXAMPLE {
        assert!(migration
            .requires()
            .iter()
            .all(|&r| r < migration.version()));
    }
}

#[test]
fn up_down_layout() {
    assert_eq!(versions(UP_DOWN), [1, 2, 10], "numeric, not string, order");
    let [create, index, seed] = UP_DOWN else {
        unreachable!()
    };
    assert_eq!(create.name(), "create_accounts");
    assert_eq!(
        create.down().unwrap().path(),
        "fixtures/valid/updown/1_create_accounts.down.sql"
    );
    assert_eq!(index.name(), "index-accounts");
    assert!(!index.up().is_transactional(), "sqlx's `-- no-transaction`");
    assert!(index.down().is_none());
    assert_eq!(seed.requires(), [1]);
}

#[test]
fn diesel_layout_keeps_diesels_order_and_metadata() {
    assert_eq!(
        versions(DIESEL),
        [
            0,
            201_903_111_234_560_000,
            201_903_111_234_561_000,
            202_001_010_000_000_000
        ]
    );
    let setup = &DIESEL[0];
    assert_eq!(setup.name(), "diesel_initial_setup");
    assert!(setup.up().sql().contains("$$ LANGUAGE plpgsql"));
    assert!(DIESEL[2].down().is_none(), "no down.sql: irreversible");
    let index = &DIESEL[3];
    assert!(!index.up().is_transactional());
    assert!(!index.down().unwrap().is_transactional());
    assert_eq!(
        index.path(),
        "fixtures/valid/diesel/2020-01-01-000000_index_posts/up.sql"
    );
}

#[test]
fn rollback_file_layout() {
    let [schema, limits] = ROLLBACK else {
        unreachable!("README.md is ignored, two migrations remain")
    };
    let down = schema.down().unwrap();
    assert_eq!(down.path(), "fixtures/valid/rollback/rollback-001.sql");
    assert_eq!(down.sql().trim(), "DROP SCHEMA platform CASCADE;");
    assert_eq!(down.line(), 2, "the kept SQL starts right after `BEGIN;`");
    assert_eq!(limits.requires(), [1]);
    assert!(limits.up().sql().trim().starts_with("ALTER TABLE"));
    assert!(!limits.up().sql().contains("COMMIT"));
    let (line, column) = limits
        .up()
        .file_position(limits.up().sql().find("ALTER").unwrap() + 1);
    assert_eq!((line, column), (4, 1), "positions map back to the file");
}

#[test]
fn crlf_and_bom_do_not_change_the_checksum() {
    assert_eq!(LF[0].checksum(), CRLF_WITH_BOM[0].checksum());
    assert_eq!(LF[0].up().sql(), CRLF_WITH_BOM[0].up().sql());
    assert!(!CRLF_WITH_BOM[0].up().sql().contains('\r'));
}

#[test]
fn checksum_is_sha256_of_the_up_section() {
    // printf 'CREATE TABLE t (id int);\nCOMMENT ON TABLE t IS '\''a; b'\'';\n' | sha256sum
    let expected = "sha256:5482a33574b3bce672ed14814f71da3664caec53c1f7e4c308cbdd452ce68f6a";
    assert_eq!(LF[0].checksum().to_string(), expected);
    assert_eq!(Checksum::parse(expected), Some(LF[0].checksum()));
}

#[test]
fn embedded_migrations_can_be_consts_and_locals_too() {
    const AGAIN: &[Migration] = migrate_macros::embed_migrations!("fixtures/valid/lf");
    let local = migrate_macros::embed_migrations!("fixtures/valid/lf");
    assert_eq!(AGAIN, LF);
    assert_eq!(local, LF);
}
